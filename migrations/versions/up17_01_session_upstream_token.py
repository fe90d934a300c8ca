"""user_sessions.upstream_id_token_sealed: the upstream's id_token of a session that signed in
through an upstream provider, sealed (the id_token_hint for ending the session there too)

Revision ID: up17_01_session_upstream_token
Revises: acct14_01_mail_queue
Create Date: 2026-12-02 15:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'up17_01_session_upstream_token'
down_revision = 'acct14_01_mail_queue'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('user_sessions', sa.Column('upstream_id_token_sealed', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_column('upstream_id_token_sealed')
