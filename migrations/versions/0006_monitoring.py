"""monitoring: version references, monitor runs and their per-feature results, model_health view

version_references: per model version, what monitoring compares new inputs against (a JSON
summary of the training rows and the holdout's predictions; the outlier model's artifact).
monitor_runs / monitor_features: every `automl monitor` run and its per-feature drift results.
model_health: one row per monitor run with the version's model, number and whether the
`production` alias points at it, for plain-SQL questions such as "which production models
drifted this week?".

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 14:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

MODEL_HEALTH = """
CREATE VIEW model_health AS
SELECT
    m.id AS monitor_run_id,
    m.model_name,
    mv.version,
    m.version_id,
    CASE WHEN EXISTS (
        SELECT 1 FROM model_aliases a WHERE a.version_id = m.version_id AND a.alias = 'production'
    ) THEN 1 ELSE 0 END AS in_production,
    m.created_at AS checked_at,
    m.source,
    m.rows,
    m.features,
    m.drifted_features,
    m.dataset_drift,
    m.prediction_drift,
    m.anomaly_rows,
    m.outlier_rows,
    mv.metric,
    m.live_metric,
    m.live_value,
    m.live_rows,
    m.holdout_value,
    m.actor
FROM monitor_runs m
JOIN model_versions mv ON mv.id = m.version_id
"""


def upgrade() -> None:
    op.create_table(
        "version_references",
        sa.Column("version_id", IdType, nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("outlier_uri", sa.Text(), nullable=True),
        sa.Column("outlier_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], ondelete="CASCADE",
            name="fk_version_references_version_id_model_versions",
        ),
        sa.PrimaryKeyConstraint("version_id", name="pk_version_references"),
    )  # fmt: skip
    op.create_table(
        "monitor_runs",
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("version_id", IdType, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_detail", sa.Text(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("features", sa.Integer(), nullable=False),
        sa.Column("drifted_features", sa.Integer(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=False),
        sa.Column("dataset_drift", sa.Boolean(), nullable=False),
        sa.Column("prediction_drift", sa.Boolean(), nullable=True),
        sa.Column("anomaly_rows", sa.Integer(), nullable=False),
        sa.Column("outlier_rows", sa.Integer(), nullable=True),
        sa.Column("live_metric", sa.String(32), nullable=True),
        sa.Column("live_value", sa.Float(), nullable=True),
        sa.Column("live_rows", sa.Integer(), nullable=True),
        sa.Column("holdout_value", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('input', 'log')", name="ck_monitor_runs_source"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], ondelete="CASCADE",
            name="fk_monitor_runs_version_id_model_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_runs"),
    )  # fmt: skip
    op.create_index("ix_monitor_runs_version_id", "monitor_runs", ["version_id"])
    op.create_index("ix_monitor_runs_model_created", "monitor_runs", ["model_name", "created_at"])
    op.create_table(
        "monitor_features",
        sa.Column("id", IdType, autoincrement=True, nullable=False),
        sa.Column("monitor_run_id", IdType, nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("statistic", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("psi", sa.Float(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["monitor_run_id"], ["monitor_runs.id"], ondelete="CASCADE",
            name="fk_monitor_features_monitor_run_id_monitor_runs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_features"),
    )  # fmt: skip
    op.create_index("ix_monitor_features_monitor_run_id", "monitor_features", ["monitor_run_id"])
    op.execute(MODEL_HEALTH)


def downgrade() -> None:
    op.execute("DROP VIEW model_health")
    op.drop_index("ix_monitor_features_monitor_run_id", table_name="monitor_features")
    op.drop_table("monitor_features")
    op.drop_index("ix_monitor_runs_model_created", table_name="monitor_runs")
    op.drop_index("ix_monitor_runs_version_id", table_name="monitor_runs")
    op.drop_table("monitor_runs")
    op.drop_table("version_references")
