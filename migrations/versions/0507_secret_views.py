"""secret views: a new client secret shown once after a redirect, not in the POST response

Revision ID: 0507_secret_views
Revises: 0401_audit_throttle_sessions
Create Date: 2026-11-30 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0507_secret_views'
down_revision = '0506_encrypted_signing_keys'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('secret_views',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=48), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['oauth2_clients.client_id'], name=op.f('fk_secret_views_client_id_oauth2_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_secret_views_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_secret_views')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_secret_views_token_hash'))
    )
    with op.batch_alter_table('secret_views', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_secret_views_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_secret_views_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_secret_views_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('secret_views', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_secret_views_user_id'))
        batch_op.drop_index(batch_op.f('ix_secret_views_expires_at'))
        batch_op.drop_index(batch_op.f('ix_secret_views_client_id'))

    op.drop_table('secret_views')
