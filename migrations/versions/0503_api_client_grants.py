"""explicit API grants per client; consents name the APIs they allowed

Revision ID: 0503_api_client_grants
Revises: 0401_audit_throttle_sessions
Create Date: 2026-11-30 10:00:00

Before, a client got tokens for an API that defines scopes once it had registered one of them,
and for an API without scopes always. Now an API allows a client only by an explicit grant
(``flask grant-api``). So that working setups keep working, the upgrade grants each API to the
clients that today have one of its scopes, and lets each remembered consent that allowed an
API's scope cover that API.
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0503_api_client_grants'
down_revision = '0501_user_sub_session_secret'
branch_labels = None
depends_on = None


def upgrade():
    grants = op.create_table('oauth2_api_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('api_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=48), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_id'], ['oauth2_resource_servers.id'], name=op.f('fk_oauth2_api_grants_api_id_oauth2_resource_servers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['oauth2_clients.client_id'], name=op.f('fk_oauth2_api_grants_client_id_oauth2_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth2_api_grants')),
    sa.UniqueConstraint('api_id', 'client_id', name='uq_oauth2_api_grants_api_id_client_id')
    )
    with op.batch_alter_table('oauth2_api_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth2_api_grants_api_id'), ['api_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth2_api_grants_client_id'), ['client_id'], unique=False)

    with op.batch_alter_table('oauth2_consents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audiences', sa.Text(), nullable=True))

    _keep_scope_based_access(grants)


def _keep_scope_based_access(grants) -> None:
    """The old rule, written down once as explicit grants (and consents naming the API)."""
    conn = op.get_bind()
    apis = sa.table('oauth2_resource_servers', sa.column('id', sa.Integer()),
                    sa.column('identifier', sa.String()), sa.column('scopes', sa.JSON()))
    clients = sa.table('oauth2_clients', sa.column('client_id', sa.String()), sa.column('scope', sa.Text()))
    consents = sa.table('oauth2_consents', sa.column('id', sa.Integer()), sa.column('scope', sa.Text()),
                        sa.column('audiences', sa.Text()))
    api_rows = [(api_id, identifier, set(scopes or []))
                for api_id, identifier, scopes in conn.execute(sa.select(apis.c.id, apis.c.identifier, apis.c.scopes))]
    api_rows = [row for row in api_rows if row[2]]
    if not api_rows:
        return
    stamp = datetime.now(timezone.utc)
    rows = []
    for client_id, scope in conn.execute(sa.select(clients.c.client_id, clients.c.scope)):
        registered = set((scope or '').split())
        rows += [{'api_id': api_id, 'client_id': client_id, 'created_at': stamp}
                 for api_id, _, scopes in api_rows if scopes & registered]
    if rows:
        op.bulk_insert(grants, rows)
    for consent_id, scope in conn.execute(sa.select(consents.c.id, consents.c.scope)).all():
        allowed = set((scope or '').split())
        named = [identifier for _, identifier, scopes in api_rows if scopes & allowed]
        if named:
            conn.execute(sa.update(consents).where(consents.c.id == consent_id).values(audiences=' '.join(named)))


def downgrade():
    with op.batch_alter_table('oauth2_consents', schema=None) as batch_op:
        batch_op.drop_column('audiences')

    with op.batch_alter_table('oauth2_api_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth2_api_grants_client_id'))
        batch_op.drop_index(batch_op.f('ix_oauth2_api_grants_api_id'))

    op.drop_table('oauth2_api_grants')
