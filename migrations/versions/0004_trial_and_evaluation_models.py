"""trial and evaluation models

runs.model_uri/model_sha256: under the holdout scheme a trial fits exactly one model; the
finalizer can register it without a refit when a refit would not fit in the time left.
model_versions.evaluation_uri/evaluation_sha256: the fit that produced a version's holdout score,
when the registered artifact was refit on every row; the promotion gate scores it.
Plain ADD/DROP COLUMN, as in 0003.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("model_uri", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("model_sha256", sa.String(length=64), nullable=True))
    op.add_column("model_versions", sa.Column("evaluation_uri", sa.Text(), nullable=True))
    op.add_column("model_versions", sa.Column("evaluation_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "evaluation_sha256")
    op.drop_column("model_versions", "evaluation_uri")
    op.drop_column("runs", "model_sha256")
    op.drop_column("runs", "model_uri")
