"""``automl report``: one self-contained HTML file for a job (see :mod:`automl.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from automl.cli.common import artifacts, console, open_store, plain, settings


def register(root: typer.Typer) -> None:
    root.command()(report)


def default_path(job_id: int) -> Path:
    return Path(f"report-job-{job_id}.html")


def write_and_print(store: Any, job_id: int, path: Path) -> Path:
    """Write the report of ``job_id`` to ``path`` and print where it went (``run`` and ``submit`` too)."""
    from automl.report import write_report  # matplotlib, scikit-learn, optuna: loaded only here

    written = write_report(store, artifacts(), job_id, settings().database_url, path)
    console().print(f"report of job {job_id} written to {plain(written)}", soft_wrap=True, highlight=False)
    return written


def report(
    job_id: int = typer.Argument(..., help="Job id."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="HTML file to write (default: report-job-JOB_ID.html)."
    ),
) -> None:
    """Write an HTML report of a job: spec, profile, trials, importances, holdout diagnostics.

    The file is self-contained (figures are embedded), so it can be mailed or archived. A job that
    failed or was cancelled gets a report of what exists.
    """
    store = open_store()
    store.get_job(job_id)  # a missing job fails here, before anything heavy is imported
    write_and_print(store, job_id, output or default_path(job_id))
