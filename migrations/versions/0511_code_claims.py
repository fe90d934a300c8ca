"""codes and tokens keep the claims the claims parameter asked for

Revision ID: 0511_code_claims
Revises: 0503_api_client_grants
Create Date: 2026-12-10 10:00:00

OpenID Connect's ``claims`` request parameter asks for individual claims in the id_token and
from UserInfo. The code keeps the request until it is redeemed; the token keeps it (through
refreshes) for UserInfo. Existing rows asked for none.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0511_code_claims'
down_revision = '0510_client_jwt_auth'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('oauth2_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims', sa.Text(), nullable=True))
    with op.batch_alter_table('oauth2_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('oauth2_tokens', schema=None) as batch_op:
        batch_op.drop_column('claims')
    with op.batch_alter_table('oauth2_codes', schema=None) as batch_op:
        batch_op.drop_column('claims')
