"""signing keys for id_tokens, shared by every instance

Revision ID: 0101_signing_keys
Revises: 0001_core
Create Date: 2026-11-23 09:35:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0101_signing_keys'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('oauth2_signing_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('alg', sa.String(length=16), nullable=False),
    sa.Column('public_jwk', sa.JSON(), nullable=False),
    sa.Column('private_jwk', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.Integer(), nullable=False),
    sa.Column('retired_at', sa.Integer(), nullable=True),
    sa.Column('publish_until', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_signing_keys')),
    sa.UniqueConstraint('kid', name=op.f('uq_oauth2_signing_keys_kid'))
    )


def downgrade():
    op.drop_table('oauth2_signing_keys')
