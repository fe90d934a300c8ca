"""DPoP-bound codes and tokens, the spent-jti cache, token exchange's act claim

Revision ID: 1701_dpop_token_exchange
Revises: 2103_user_disabled_at
Create Date: 2026-12-02 05:30:00

DPoP (RFC 9449): a code may be bound to a key by the authorization request (dpop_jkt), a
token to the key of the proof it was issued with; proofs' jtis are spent once, on every
instance (spent_jtis, unless Redis holds them). Token exchange (RFC 8693): the token keeps
who acts for its subject (act); an API's grant to a client may allow impersonation. Existing rows are unbound bearer tokens.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1701_dpop_token_exchange'
down_revision = '2103_user_disabled_at'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('oauth2_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpop_jkt', sa.String(length=43), nullable=True))
    with op.batch_alter_table('oauth2_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpop_jkt', sa.String(length=43), nullable=True))
        batch_op.add_column(sa.Column('act', sa.Text(), nullable=True))
    with op.batch_alter_table('oauth2_api_grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_impersonation', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.create_table('spent_jtis',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_spent_jtis'))
    )
    with op.batch_alter_table('spent_jtis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spent_jtis_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('spent_jtis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spent_jtis_expires_at'))
    op.drop_table('spent_jtis')
    with op.batch_alter_table('oauth2_api_grants', schema=None) as batch_op:
        batch_op.drop_column('allow_impersonation')
    with op.batch_alter_table('oauth2_tokens', schema=None) as batch_op:
        batch_op.drop_column('act')
        batch_op.drop_column('dpop_jkt')
    with op.batch_alter_table('oauth2_codes', schema=None) as batch_op:
        batch_op.drop_column('dpop_jkt')
