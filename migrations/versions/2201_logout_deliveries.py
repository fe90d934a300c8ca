"""logout_deliveries (back-channel logout queue); sid with codes and tokens (the id_token's sid)

Revision ID: 2201_logout_deliveries
Revises: 1801_mfa
Create Date: 2026-12-02 06:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2201_logout_deliveries'
down_revision = '1801_mfa'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'logout_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=48), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('sub', sa.String(length=255), nullable=False),
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('issuer', sa.String(length=2000), nullable=True),
        sa.Column('jti', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_logout_deliveries')),
    )
    op.create_index('ix_logout_deliveries_due', 'logout_deliveries', ['state', 'next_attempt_at'], unique=False)
    # Plain ADD COLUMNs (no batch rebuild), as 2103 does.
    op.add_column('oauth2_codes', sa.Column('sid', sa.String(length=64), nullable=True))
    op.add_column('oauth2_tokens', sa.Column('sid', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('oauth2_tokens', schema=None) as batch_op:
        batch_op.drop_column('sid')
    with op.batch_alter_table('oauth2_codes', schema=None) as batch_op:
        batch_op.drop_column('sid')
    op.drop_index('ix_logout_deliveries_due', table_name='logout_deliveries')
    op.drop_table('logout_deliveries')
