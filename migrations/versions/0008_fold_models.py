"""fold models of a trial

runs.folds_uri/folds_sha256: under K-fold cross-validation a trial of a tree family keeps the K
models its folds fitted; the finalizer averages them into the member's final model beside the
refit on every row (see automl.model.FoldBag). Plain ADD/DROP COLUMN, as in 0004.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 21:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("folds_uri", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("folds_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "folds_sha256")
    op.drop_column("runs", "folds_uri")
