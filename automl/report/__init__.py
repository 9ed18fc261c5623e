"""The job report: one self-contained HTML file that explains a job, from its spec to its model.

:func:`build_report` reads the store, the job's Optuna study and the final model version, and
renders ``templates/report.html.j2`` (Jinja2, autoescaped: column names, class labels and error
messages are user data). Figures are PNGs embedded as data URIs and the page's
Content-Security-Policy forbids loading anything else, so the file can be mailed or archived.

A job that did not succeed still gets a report of what exists; every section that has nothing to
show says why. The holdout sections predict with the final model in this process: the report is
built at the end of a CLI command, which never forks afterwards (model code is otherwise kept in
forked children, see :mod:`automl.sandbox`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from automl.artifacts import ArtifactStore
from automl.errors import AutomlError, InputError
from automl.report.sections import (
    ensemble_section,
    families_section,
    final_model_section,
    fmt,
    history_section,
    importances_section,
    leaderboard_section,
    learning_curves_section,
    overview_section,
    profile_section,
    why_missing,
)
from automl.store.base import Store

# -- the report -----------------------------------------------------------------------------------


def templates() -> Any:
    """The Jinja environment of the HTML reports (the job report, the drift report)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("automl", "templates"), autoescape=True, undefined=StrictUndefined)
    env.filters["num"] = fmt
    return env


def build_report(store: Store, artifacts: ArtifactStore, job_id: int, database_url: str) -> str:
    """The HTML report of one job. A missing job raises :class:`~automl.errors.NotFound`."""
    job = store.get_job(job_id)
    version = store.version_for_job(job_id)
    runs = store.list_runs(job_id)
    holdout: dict[str, Any] = {"message": why_missing(job)}
    model: dict[str, Any] = {"message": why_missing(job)}
    if version is not None:
        metrics = store.list_metrics(model_version_id=version.id)
        holdout = {
            "metrics": [m for m in metrics if m.split == "holdout"],
            "version": version,
            "trained_on": (job.summary or {}).get("trained_on"),
        }
        try:
            model = final_model_section(store, artifacts, job, version)
        except AutomlError as exc:  # e.g. the dataset or model artifact is gone: report the rest
            model = {"message": f"the final model could not be evaluated here: {exc}"}
    context = {
        **overview_section(store, job, version),
        "generated_at": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "profile": profile_section(store, job),
        "selection": job.selection or [],
        "leaderboard": leaderboard_section(store, job, runs),
        "history": history_section(job, runs),
        "importances": importances_section(job, runs, database_url),
        "families": families_section(job, runs),
        "ensemble": ensemble_section(job, runs),
        "holdout": holdout,
        "model": model,
        "curves": learning_curves_section(store, job, runs),
        "missing": why_missing(job),
    }
    return str(templates().get_template("report.html.j2").render(**context))


def check_output(path: Path) -> Path:
    """The absolute path a report will be written to; refuses one whose folder does not exist (so
    ``automl run --report`` fails before the job, not after it)."""
    path = Path(path).expanduser().resolve()
    if not path.parent.is_dir():
        raise InputError(
            f"cannot write the report to {path}: the folder {path.parent} does not exist",
            hint=f"create it first (mkdir -p {path.parent}) or give another path",
        )
    if path.is_dir():
        raise InputError(f"cannot write the report to {path}: it is a folder", hint="give a file name ending in .html")
    return path


def write_report(store: Store, artifacts: ArtifactStore, job_id: int, database_url: str, path: Path) -> Path:
    """Build the report and write it to ``path`` (atomically); returns the absolute path."""
    return write_html(path, build_report(store, artifacts, job_id, database_url))


def write_html(path: Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (a partial file renamed over it); the absolute path."""
    path = check_output(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path
