"""users.username_canonical: usernames unique ignoring case and look-alike (NFKC) forms

Revision ID: 0508_username_canonical
Revises: 0401_audit_throttle_sessions
Create Date: 2026-11-24 10:00:00

The canonical form of each existing username is computed here in Python (NFKC, case-folded,
NFKC again: the rule of website/usernames.py, frozen as it was when this revision was written).
If two existing users share a canonical form ("alice" and "Alice"), the upgrade refuses to run,
before it changes anything, and names them: rename one, then run it again.
"""
import unicodedata

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0508_username_canonical'
down_revision = '0507_secret_views'
branch_labels = None
depends_on = None

MAX_LENGTH = 40


def canonical_username(value):
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def _canonical_forms(conn):
    """{user id: canonical form}, or RuntimeError naming the usernames that cannot get one."""
    rows = conn.execute(sa.text("SELECT id, username FROM users ORDER BY id")).all()
    by_canonical = {}
    for user_id, username in rows:
        by_canonical.setdefault(canonical_username(username), []).append(username)
    clashes = [names for names in by_canonical.values() if len(names) > 1]
    too_long = [names[0] for canonical, names in by_canonical.items() if len(canonical) > MAX_LENGTH]
    problems = []
    if clashes:
        problems.append("these users' names differ only in case or look-alike characters, but must be "
                        "unique: " + "; ".join(", ".join(repr(name) for name in names) for names in clashes)
                        + ". Rename all but one in each group (UPDATE users SET username = '...' "
                        "WHERE username = '...')")
    if too_long:
        problems.append(f"these usernames are longer than {MAX_LENGTH} characters in canonical form: "
                        + ", ".join(repr(name) for name in too_long) + ". Rename them")
    if problems:
        raise RuntimeError("Cannot upgrade to 0508_username_canonical, the database is unchanged: "
                           + "; and ".join(problems) + ", then run `flask initdb` again.")
    return {user_id: canonical_username(username) for user_id, username in rows}


#: A batch rebuild on SQLite must keep users an AUTOINCREMENT table (ids never reused, 0501).
_KEEP_AUTOINCREMENT = {'sqlite_autoincrement': True}


def _users_sequence(conn):
    """SQLite's next-id counter of users (0501 set it past every id the audit log names)."""
    if conn.dialect.name != "sqlite":
        return None
    return conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'users'")).scalar()


def _restore_users_sequence(conn, seq) -> None:
    """A batch rebuild restarts the counter at max(id): put back the one 0501 set."""
    if seq is None:
        return
    conn.execute(sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'users'"), {"seq": seq})


def upgrade():
    conn = op.get_bind()
    canonical = _canonical_forms(conn)  # before any change: a refusal leaves the database as it was
    seq = _users_sequence(conn)
    with op.batch_alter_table('users', schema=None, table_kwargs=_KEEP_AUTOINCREMENT) as batch_op:
        batch_op.add_column(sa.Column('username_canonical', sa.String(length=40), nullable=True))
    users = sa.table('users', sa.column('id', sa.Integer()), sa.column('username_canonical', sa.String()))
    for user_id, value in canonical.items():
        conn.execute(users.update().where(users.c.id == user_id).values(username_canonical=value))
    with op.batch_alter_table('users', schema=None, table_kwargs=_KEEP_AUTOINCREMENT) as batch_op:
        batch_op.alter_column('username_canonical', existing_type=sa.String(length=40), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_users_username_canonical'), ['username_canonical'])
    _restore_users_sequence(conn, seq)


def downgrade():
    with op.batch_alter_table('users', schema=None, table_kwargs=_KEEP_AUTOINCREMENT) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_username_canonical'), type_='unique')
        batch_op.drop_column('username_canonical')
