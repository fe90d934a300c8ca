"""upstream identity providers, linked identities and sign-ins under way

Revision ID: 2001_upstreams
Revises: 1401_account_links
Create Date: 2026-12-02 05:40:00

People may sign in through an upstream OpenID Connect or OAuth 2.0 provider: the providers an
administrator configured (client secret sealed), the upstream identities linked to local
accounts by (upstream, subject), and the state of sign-ins sent to an upstream.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2001_upstreams'
down_revision = '1401_account_links'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'upstreams',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('display_name', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('preset', sa.String(length=20), nullable=True),
        sa.Column('issuer', sa.String(length=500), nullable=True),
        sa.Column('client_id', sa.String(length=255), nullable=False),
        sa.Column('client_secret_encrypted', sa.Text(), nullable=False),
        sa.Column('scope', sa.String(length=500), nullable=False),
        sa.Column('authorize_url', sa.String(length=500), nullable=True),
        sa.Column('token_url', sa.String(length=500), nullable=True),
        sa.Column('userinfo_url', sa.String(length=500), nullable=True),
        sa.Column('emails_url', sa.String(length=500), nullable=True),
        sa.Column('claim_map', sa.JSON(), nullable=False),
        sa.Column('overwrite_claims', sa.JSON(), nullable=False),
        sa.Column('end_upstream_session', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_upstreams')),
        sa.UniqueConstraint('name', name=op.f('uq_upstreams_name')),
    )
    op.create_table(
        'upstream_identities',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('upstream_id', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('groups', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['upstream_id'], ['upstreams.id'],
                                name=op.f('fk_upstream_identities_upstream_id_upstreams'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_upstream_identities_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_upstream_identities')),
        sa.UniqueConstraint('upstream_id', 'subject', name=op.f('uq_upstream_identities_upstream_id')),
    )
    with op.batch_alter_table('upstream_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upstream_identities_user_id'), ['user_id'], unique=False)
    op.create_table(
        'upstream_states',
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('expires_at', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key_hash', name=op.f('pk_upstream_states')),
    )
    with op.batch_alter_table('upstream_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upstream_states_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('upstream_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upstream_states_expires_at'))
    op.drop_table('upstream_states')
    with op.batch_alter_table('upstream_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upstream_identities_user_id'))
    op.drop_table('upstream_identities')
    op.drop_table('upstreams')
