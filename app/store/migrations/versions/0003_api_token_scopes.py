"""API token scopes; tokens made before keep every scope they could use

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# What a token could do before scopes existed: everything but adopting an existing user,
# which the API could not do then.
_BEFORE_SCOPES = ["users:read", "invitations:write", "users:lifecycle", "users:delete"]


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scopes", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    tokens = sa.table("api_tokens", sa.column("scopes", sa.JSON()))
    op.execute(tokens.update().values(scopes=_BEFORE_SCOPES))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scopes")
