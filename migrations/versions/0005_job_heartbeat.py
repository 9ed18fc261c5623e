"""job heartbeat

jobs.heartbeat_at: stamped every few seconds by the process that runs a job in-process
(``automl run``); a running job whose heartbeat is stale lost its process and can be resumed with
``automl jobs resume``. Plain ADD/DROP COLUMN, as in 0003.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 03:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "heartbeat_at")
