"""users: ids never reused (SQLite AUTOINCREMENT), an opaque sub, a per-user session secret

Revision ID: 0501_user_sub_session_secret
Revises: 0401_audit_throttle_sessions
Create Date: 2026-11-24 10:00:00

Existing users keep the ``sub`` apps already know, ``str(id)``; new users get a random one.
Every existing user gets a fresh random session secret, replacing the session generation:
cookies made before the upgrade sign in nobody (people log in once more).
"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0501_user_sub_session_secret'
down_revision = '0401_audit_throttle_sessions'
branch_labels = None
depends_on = None


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sub', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('session_secret', sa.String(length=64), nullable=True))

    conn = op.get_bind()
    users = sa.table('users', sa.column('id', sa.Integer), sa.column('sub', sa.String),
                     sa.column('session_secret', sa.String))
    conn.execute(users.update().values(sub=sa.cast(users.c.id, sa.String(255))))
    for (user_id,) in conn.execute(sa.select(users.c.id)).all():
        conn.execute(users.update().where(users.c.id == user_id)
                     .values(session_secret=secrets.token_hex(32)))

    # On SQLite the table is rebuilt with AUTOINCREMENT (PostgreSQL's sequence never hands an
    # id out twice already). env.py turns foreign keys off, so dropping the old table does not
    # cascade into the rows that reference it.
    with op.batch_alter_table('users', schema=None, recreate='always' if _is_sqlite() else 'auto',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.alter_column('sub', existing_type=sa.String(length=255), nullable=False)
        batch_op.alter_column('session_secret', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_users_sub'), ['sub'])
        batch_op.drop_column('session_generation')

    if _is_sqlite():
        # Ids of users deleted before this upgrade are gone from the table but still named in
        # the audit log: start the counter past them too.
        conn.exec_driver_sql(
            "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(user_id) FROM audit_events), 0))"
            " WHERE name = 'users'"
        )
        conn.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'users', (SELECT max(user_id) FROM audit_events)"
            " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'users')"
            " AND (SELECT max(user_id) FROM audit_events) IS NOT NULL"
        )


def downgrade():
    with op.batch_alter_table('users', schema=None, recreate='always' if _is_sqlite() else 'auto',
                              table_kwargs={'sqlite_autoincrement': False}) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(batch_op.f('uq_users_sub'), type_='unique')
        batch_op.drop_column('session_secret')
        batch_op.drop_column('sub')
