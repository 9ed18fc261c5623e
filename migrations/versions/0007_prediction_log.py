"""prediction log: every answered row of `automl serve` and `automl predict` (sampled)

The input row, the prediction and class probabilities, the version that answered, the latency of
its request and a row id (the spec's id column, or a generated one) that `automl feedback` joins
true labels on. `automl monitor --since` reads it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("version_id", IdType, nullable=False),
        sa.Column("row_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("prediction", sa.JSON(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("label", sa.JSON(), nullable=True),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("source IN ('serve', 'predict')", name="ck_prediction_log_source"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], ondelete="CASCADE",
            name="fk_prediction_log_version_id_model_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_log"),
    )  # fmt: skip
    op.create_index("ix_prediction_log_version_id", "prediction_log", ["version_id"])
    op.create_index("ix_prediction_log_model_created", "prediction_log", ["model_name", "created_at"])
    op.create_index("ix_prediction_log_model_row", "prediction_log", ["model_name", "row_id"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_model_row", table_name="prediction_log")
    op.drop_index("ix_prediction_log_model_created", table_name="prediction_log")
    op.drop_index("ix_prediction_log_version_id", table_name="prediction_log")
    op.drop_table("prediction_log")
