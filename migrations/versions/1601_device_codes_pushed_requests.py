"""device codes (RFC 8628) and pushed authorization requests (RFC 9126)

Revision ID: 1601_device_par
Revises: 1901_passkeys
Create Date: 2026-12-02 05:30:00

Two new tables of requests waiting for a browser. Codes and request_uris are kept as their
SHA-256 only; a row is spent once by a guarded UPDATE of used_at.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1601_device_par'
down_revision = '1901_passkeys'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'oauth2_device_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_code_hash', sa.String(length=64), nullable=False),
        sa.Column('user_code_hash', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=48), nullable=False),
        sa.Column('scope', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.Integer(), nullable=False),
        sa.Column('interval', sa.Integer(), nullable=False),
        sa.Column('last_polled_at', sa.Integer(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('decision', sa.String(length=10), nullable=True),
        sa.Column('auth_time', sa.Integer(), nullable=True),
        sa.Column('used_at', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['oauth2_clients.client_id'],
                                name=op.f('fk_oauth2_device_codes_client_id_oauth2_clients'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_oauth2_device_codes_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_device_codes')),
        sa.UniqueConstraint('device_code_hash', name=op.f('uq_oauth2_device_codes_device_code_hash')),
        sa.UniqueConstraint('user_code_hash', name=op.f('uq_oauth2_device_codes_user_code_hash')),
    )
    with op.batch_alter_table('oauth2_device_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth2_device_codes_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth2_device_codes_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth2_device_codes_user_id'), ['user_id'], unique=False)
    op.create_table(
        'oauth2_pushed_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_uri_hash', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=48), nullable=False),
        sa.Column('parameters', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.Integer(), nullable=False),
        sa.Column('used_at', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['oauth2_clients.client_id'],
                                name=op.f('fk_oauth2_pushed_requests_client_id_oauth2_clients'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_pushed_requests')),
        sa.UniqueConstraint('request_uri_hash', name=op.f('uq_oauth2_pushed_requests_request_uri_hash')),
    )
    with op.batch_alter_table('oauth2_pushed_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth2_pushed_requests_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth2_pushed_requests_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('oauth2_pushed_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth2_pushed_requests_expires_at'))
        batch_op.drop_index(batch_op.f('ix_oauth2_pushed_requests_client_id'))
    op.drop_table('oauth2_pushed_requests')
    with op.batch_alter_table('oauth2_device_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth2_device_codes_user_id'))
        batch_op.drop_index(batch_op.f('ix_oauth2_device_codes_expires_at'))
        batch_op.drop_index(batch_op.f('ix_oauth2_device_codes_client_id'))
    op.drop_table('oauth2_device_codes')
