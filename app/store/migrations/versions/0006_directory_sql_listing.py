"""directory users: the name key, the IAM-only status and its rank: the dashboard pages in SQL

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_name_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("iam_status", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("iam_rank", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_directory_users_user_name_key"), ["user_name_key"], unique=False
        )
        batch_op.create_index(
            "ix_directory_users_rank_key", ["iam_rank", "user_name_key"], unique=False
        )
    # The snapshot already stored: the same values the next refresh writes (statuses.iam_status,
    # and its place in statuses.STATUSES).
    op.execute(
        "UPDATE directory_users SET user_name_key = lower(user_name), iam_status = CASE"
        " WHEN NOT mfa_active THEN 'no MFA'"
        " WHEN NOT in_mfa_group THEN 'outside MFA group'"
        " ELSE 'MFA (unmanaged)' END"
    )
    op.execute(
        "UPDATE directory_users SET iam_rank = CASE iam_status"
        " WHEN 'no MFA' THEN 2 WHEN 'outside MFA group' THEN 3 ELSE 7 END"
    )


def downgrade() -> None:
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.drop_index("ix_directory_users_rank_key")
        batch_op.drop_index(batch_op.f("ix_directory_users_user_name_key"))
        batch_op.drop_column("iam_rank")
        batch_op.drop_column("iam_status")
        batch_op.drop_column("user_name_key")
