"""leaderboard and model_version_summary views

Plain SQL views any SQL client can read (psql, sqlite3, a BI tool). They are written in the SQL
that SQLite and PostgreSQL share: window functions, CASE, scalar subqueries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:20:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEADERBOARD = """
CREATE VIEW leaderboard AS
SELECT
    r.job_id,
    j.name AS job_name,
    j.metric,
    CASE WHEN r.status = 'succeeded' AND r.cv_score IS NOT NULL THEN
        RANK() OVER (
            PARTITION BY r.job_id
            ORDER BY
                CASE WHEN r.status = 'succeeded' AND r.cv_score IS NOT NULL THEN 0 ELSE 1 END,
                CASE WHEN j.greater_is_better THEN -r.cv_score ELSE r.cv_score END
        )
    END AS rank,
    r.id AS run_id,
    r.kind,
    r.trial_number,
    r.family,
    r.status,
    r.cv_score,
    r.cv_std,
    r.holdout_score,
    r.fit_seconds,
    r.worker,
    r.error_code,
    r.started_at,
    r.finished_at
FROM runs r
JOIN jobs j ON j.id = r.job_id
"""

MODEL_VERSION_SUMMARY = """
CREATE VIEW model_version_summary AS
SELECT
    mv.id AS version_id,
    mv.model_name,
    mv.version,
    mv.job_id,
    mv.task,
    mv.metric,
    mv.cv_score,
    mv.holdout_score,
    r.kind AS winner_kind,
    r.family AS winner_family,
    d.id AS dataset_id,
    d.name AS dataset_name,
    d.fingerprint AS dataset_fingerprint,
    j.submitted_by,
    (SELECT COUNT(*) FROM runs t WHERE t.job_id = mv.job_id AND t.kind = 'trial') AS trials,
    mv.artifact_uri,
    mv.artifact_sha256,
    mv.created_at
FROM model_versions mv
JOIN jobs j ON j.id = mv.job_id
JOIN datasets d ON d.id = j.dataset_id
LEFT JOIN runs r ON r.id = mv.run_id
"""


def upgrade() -> None:
    op.execute(LEADERBOARD)
    op.execute(MODEL_VERSION_SUMMARY)


def downgrade() -> None:
    op.execute("DROP VIEW model_version_summary")
    op.execute("DROP VIEW leaderboard")
