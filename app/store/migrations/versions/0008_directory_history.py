"""directory history: one row of headline counts per refresh, for the coverage chart

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("console_users", sa.Integer(), nullable=False),
        sa.Column("console_with_mfa", sa.Integer(), nullable=False),
        sa.Column("report_missing", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("directory_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_history_refreshed_at"), ["refreshed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("directory_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_history_refreshed_at"))
    op.drop_table("directory_history")
