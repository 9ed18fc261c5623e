"""measured prediction time of a trial

runs.predict_seconds_per_row: the seconds a trial's fits took to predict their validation rows,
per row. Under a holdout split the finalizer may register a trial's own fit, which must first
predict the job's holdout rows in the time left; this measurement tells it how long that takes,
where a model from the fit seconds can be off by an order of magnitude (a boosted model on wide
data fits slowly and predicts fast). Plain ADD/DROP COLUMN, as in 0008.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("predict_seconds_per_row", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "predict_seconds_per_row")
