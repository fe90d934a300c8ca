"""spent private_key_jwt client assertions (their jti), so none is used twice

Revision ID: 0510_client_jwt_auth
Revises: 0503_api_client_grants
Create Date: 2026-12-10 10:00:00

A client authenticating with private_key_jwt (RFC 7523) sends a signed assertion with a
``jti``; the server keeps each (client, jti) until the assertion expires and refuses it a
second time. The client's keys (``jwks`` / ``jwks_uri``) and the ``strict_auth_method``
flag live in the existing ``extra_metadata`` JSON: no column changes.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0510_client_jwt_auth'
down_revision = '0509_token_auth_time'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('oauth2_client_assertion_jtis',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=48), nullable=False),
    sa.Column('jti_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['oauth2_clients.client_id'], name=op.f('fk_oauth2_client_assertion_jtis_client_id_oauth2_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_client_assertion_jtis')),
    sa.UniqueConstraint('client_id', 'jti_hash', name='uq_oauth2_client_assertion_jtis_client_id_jti_hash')
    )
    with op.batch_alter_table('oauth2_client_assertion_jtis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth2_client_assertion_jtis_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('oauth2_client_assertion_jtis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth2_client_assertion_jtis_expires_at'))
    op.drop_table('oauth2_client_assertion_jtis')
