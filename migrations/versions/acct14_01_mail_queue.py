"""mail_queue: mail the mail server refused, sent later by a worker with retries

Revision ID: acct14_01_mail_queue
Revises: 2001_upstreams
Create Date: 2026-12-02 15:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'acct14_01_mail_queue'
down_revision = '2001_upstreams'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'mail_queue',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('to_address', sa.String(length=254), nullable=False),
        sa.Column('template', sa.String(length=40), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('link_purpose', sa.String(length=20), nullable=True),
        sa.Column('created_by', sa.String(length=40), nullable=True),
        sa.Column('base_url', sa.String(length=2000), nullable=True),
        sa.Column('context', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_queue')),
    )
    op.create_index('ix_mail_queue_due', 'mail_queue', ['state', 'next_attempt_at'], unique=False)


def downgrade():
    op.drop_index('ix_mail_queue_due', table_name='mail_queue')
    op.drop_table('mail_queue')
