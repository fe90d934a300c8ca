"""sessions live on the server: a row per signed-in browser

Revision ID: 1501_user_sessions
Revises: 1701_dpop_token_exchange
Create Date: 2026-12-02 05:30:00

The session cookie carries the row's random id (the OpenID Connect ``sid``); the account page
lists the live rows and ends any of them, on every instance at once. Cookies made before this
revision carry no id and sign nobody in: people log in once more.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1501_user_sessions'
down_revision = '1701_dpop_token_exchange'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('last_seen_at', sa.Integer(), nullable=False),
        sa.Column('ended_at', sa.Integer(), nullable=False),
        sa.Column('ip_address', sa.String(length=45), nullable=True),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.Column('amr', sa.JSON(), nullable=False),
        sa.Column('clients', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    )
    op.create_index('ix_user_sessions_user_live', 'user_sessions', ['user_id', 'ended_at'], unique=False)


def downgrade():
    op.drop_index('ix_user_sessions_user_live', table_name='user_sessions')
    op.drop_table('user_sessions')
