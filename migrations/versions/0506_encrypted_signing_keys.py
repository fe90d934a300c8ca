"""private signing keys encrypted at rest (Fernet, KEY_ENCRYPTION_KEYS)

Revision ID: 0506_encrypted_signing_keys
Revises: 0401_audit_throttle_sessions
Create Date: 2026-11-24 10:00:00

The plain ``private_jwk`` column is replaced by ``private_key_encrypted``, and existing private
keys are encrypted here, in the same transaction as the column change, so a database is either
fully migrated or not at all: never half plain, half encrypted. Every key is encrypted before
anything is changed; PostgreSQL runs DDL in the transaction, and on SQLite a no-op UPDATE first
makes the driver open the transaction the ALTERs then join (pysqlite would otherwise autocommit
each ALTER up to the first UPDATE). The key comes from the app running the migration, i.e. the
same source the server uses: KEY_ENCRYPTION_KEYS from the environment or instance/config.py,
else the key generated in the instance folder (create_app has read or generated it).
"""
import json

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet, MultiFernet
from flask import current_app

# revision identifiers, used by Alembic.
revision = '0506_encrypted_signing_keys'
down_revision = '0503_api_client_grants'
branch_labels = None
depends_on = None


def _fernet() -> MultiFernet:
    keys = current_app.config["KEY_ENCRYPTION_KEYS"].split(",")
    return MultiFernet([Fernet(key.strip()) for key in keys if key.strip()])


KEYS = sa.table('oauth2_signing_keys', sa.column('id', sa.Integer()),
                sa.column('private_jwk', sa.JSON()), sa.column('private_key_encrypted', sa.Text()))


def _begin_transaction(conn) -> None:
    """Open the transaction before the first ALTER (a no-op on PostgreSQL, already in one)."""
    conn.execute(KEYS.update().where(sa.false()).values(id=KEYS.c.id))


def upgrade():
    conn = op.get_bind()
    rows = conn.execute(sa.select(KEYS.c.id, KEYS.c.private_jwk).where(KEYS.c.private_jwk.is_not(None))).all()
    encrypted = {}
    for row_id, private_jwk in rows:
        if isinstance(private_jwk, str):  # a JSON string, on a driver that does not decode it
            private_jwk = json.loads(private_jwk)
        if private_jwk is not None:  # JSON null: no private key
            encrypted[row_id] = _fernet().encrypt(json.dumps(private_jwk).encode()).decode()

    _begin_transaction(conn)
    with op.batch_alter_table('oauth2_signing_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('private_key_encrypted', sa.Text(), nullable=True))
    for row_id, ciphertext in encrypted.items():
        conn.execute(KEYS.update().where(KEYS.c.id == row_id).values(private_key_encrypted=ciphertext))
    with op.batch_alter_table('oauth2_signing_keys', schema=None) as batch_op:
        batch_op.drop_column('private_jwk')


def downgrade():
    conn = op.get_bind()
    rows = conn.execute(sa.select(KEYS.c.id, KEYS.c.private_key_encrypted)
                        .where(KEYS.c.private_key_encrypted.is_not(None))).all()
    plain = {row_id: json.loads(_fernet().decrypt(ciphertext.encode())) for row_id, ciphertext in rows}

    _begin_transaction(conn)
    with op.batch_alter_table('oauth2_signing_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('private_jwk', sa.JSON(), nullable=True))
    for row_id, private_jwk in plain.items():
        conn.execute(KEYS.update().where(KEYS.c.id == row_id).values(private_jwk=private_jwk))
    with op.batch_alter_table('oauth2_signing_keys', schema=None) as batch_op:
        batch_op.drop_column('private_key_encrypted')
