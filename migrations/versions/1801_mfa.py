"""second factors (TOTP, recovery codes), the MFA grace period, amr/acr on codes and tokens

Revision ID: 1801_mfa
Revises: 2103_user_disabled_at
Create Date: 2026-12-02 05:30:00

A person may add a TOTP authenticator (its secret sealed under KEY_ENCRYPTION_KEYS) and gets
ten single-use recovery codes (stored as SHA-256). ``users.mfa_grace_started_at`` is when an
MFA policy first found the person without a second factor. Codes and tokens carry how the
person signed in (``amr``) and the resulting ``acr`` for id_tokens, refreshes, introspection
and JWT access tokens; rows from before have none and leave the claims out.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1801_mfa'
down_revision = '2103_user_disabled_at'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'mfa_totp',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('secret_sealed', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('confirmed_at', sa.Integer(), nullable=True),
        sa.Column('last_used_step', sa.Integer(), nullable=True),
        sa.Column('last_used_at', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_totp_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_totp')),
        sa.UniqueConstraint('user_id', name=op.f('uq_mfa_totp_user_id')),
    )
    op.create_table(
        'mfa_recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('used_at', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_recovery_codes_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mfa_recovery_codes')),
        sa.UniqueConstraint('code_hash', name=op.f('uq_mfa_recovery_codes_code_hash')),
    )
    with op.batch_alter_table('mfa_recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mfa_recovery_codes_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_grace_started_at', sa.Integer(), nullable=True))
    for table in ('oauth2_codes', 'oauth2_tokens'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('amr', sa.String(length=200), nullable=True))
            batch_op.add_column(sa.Column('acr', sa.String(length=200), nullable=True))


def downgrade():
    for table in ('oauth2_tokens', 'oauth2_codes'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('acr')
            batch_op.drop_column('amr')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('mfa_grace_started_at')
    with op.batch_alter_table('mfa_recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mfa_recovery_codes_user_id'))
    op.drop_table('mfa_recovery_codes')
    op.drop_table('mfa_totp')
