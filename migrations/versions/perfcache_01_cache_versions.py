"""cache_versions: one counter per in-process cache (clients, apis), bumped in the
transaction of every write to what it holds, so other instances drop their copies

Revision ID: perfcache_01_cache_versions
Revises: up17_01_session_upstream_token
Create Date: 2026-12-02 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'perfcache_01_cache_versions'
down_revision = 'up17_01_session_upstream_token'
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table(
        'cache_versions',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_cache_versions')),
    )
    op.bulk_insert(table, [{'name': 'clients', 'version': 0}, {'name': 'apis', 'version': 0}])


def downgrade():
    op.drop_table('cache_versions')
