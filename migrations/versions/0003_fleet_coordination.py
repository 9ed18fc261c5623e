"""fleet coordination: shared trial counter, cancel flag, finalizer claim, run heartbeats

Plain ADD/DROP COLUMN (not batch mode): SQLite supports both natively, and a batch
copy-and-move of `jobs` or `runs` would break the views that read them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:28:42.362327

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("trials_started", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("jobs", sa.Column("finalize_claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "heartbeat_at")
    op.drop_column("jobs", "finalize_claimed_at")
    op.drop_column("jobs", "cancel_requested")
    op.drop_column("jobs", "trials_started")
