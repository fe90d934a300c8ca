"""tokens remember when the person signed in (auth_time), for id_tokens on refresh

Revision ID: 0509_token_auth_time
Revises: 0503_api_client_grants
Create Date: 2026-12-10 10:00:00

A refresh with the openid scope returns a new id_token whose auth_time must be the time of
the original sign-in (OpenID Connect Core §12.2), so every token row carries it from the code
it was exchanged for through each refresh. Rows from before have none: their refreshed
id_tokens leave auth_time out rather than make one up.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0509_token_auth_time'
down_revision = '0508_username_canonical'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('oauth2_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_time', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('oauth2_tokens', schema=None) as batch_op:
        batch_op.drop_column('auth_time')
