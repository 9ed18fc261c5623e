"""Typed settings: the only module that reads environment variables.

Settings are read once, at the edge (the CLI, a worker, the API), and passed down. Defaults keep
everything under ``./.automl/`` in the working directory, the way MLflow keeps ``./mlruns``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AUTOML_"
DEFAULT_HOME = ".automl"


def _default_database_url() -> str:
    return f"sqlite:///{(Path.cwd() / DEFAULT_HOME / 'automl.db').as_posix()}"


def _default_artifact_root() -> Path:
    return Path.cwd() / DEFAULT_HOME / "artifacts"


class Settings(BaseSettings):
    """Process-wide settings. Each field is read from ``AUTOML_<FIELD>`` when set."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy URL of the metadata store (SQLite file or PostgreSQL).",
    )
    artifact_root: Path = Field(
        default_factory=_default_artifact_root,
        description="Folder where models, datasets and predictions are stored by content.",
    )
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Celery broker URL used by `automl submit` and `automl worker`.",
    )
    trial_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="A running trial whose worker sent no heartbeat for this long is failed (workers "
        "heartbeat every 5 s while a fit runs, however long the fit).",
    )
    trial_slice_s: float = Field(
        default=300.0,
        gt=0,
        description="A worker's trial task hands the job back to the queue after this long.",
    )
    worker_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads of each trial an `automl worker` runs for a spec whose n_jobs is -1 "
        "(`automl worker` sets it to the machine's cores divided by --concurrency unless given). Where "
        "several workers share a machine, give each its share: cores / worker processes.",
    )
    parallel_trials: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Trials `automl run` and `automl jobs resume` run at once, each on its share of the "
        "cores (unless the spec sets n_jobs). Unset: up to 4 on a machine with that many cores, and one "
        "at a time for a job with a trial budget, so that its seed reproduces it.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the server's admin endpoints (promote, rollback); unset disables them.",
    )
    alias_poll_s: float = Field(default=0.5, gt=0, description="How often `automl serve` re-reads aliases (seconds).")
    model_cache_size: int = Field(
        default=4, ge=1, description="Versions `automl serve` keeps loaded (at least those aliases point at)."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body `automl serve` reads (bytes); a larger one is answered 413 unread.",
    )
    log_sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of answered rows `automl serve` and `automl predict` write to the prediction log "
        "(0 turns the log off).",
    )
    log_retention_days: float = Field(
        default=30.0,
        ge=0.0,
        description="Logged predictions older than this many days are deleted (0 keeps them forever).",
    )
    predict_concurrency: int = Field(
        default=1,
        ge=1,
        description="Predictions one server process runs at once (more wait their turn). Tree ensembles "
        "predict in Python under the GIL, so threads only slow each other down: scale with `--workers`.",
    )


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's limit may narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SettingSource:
    """One setting in force and where its value came from."""

    name: str
    env_var: str
    value: str
    source: str  # "environment" or "default"


def load_settings() -> Settings:
    """Read settings from the environment (call once at the edge and pass the result down). A value
    the rules refuse is an :class:`automl.errors.InputError` naming the variable, the value and the
    rule, not a traceback."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        from automl.errors import InputError, clip

        problems = [
            f"{ENV_PREFIX}{'.'.join(str(part) for part in error['loc']).upper()}="
            f"{clip(str(error.get('input')), 60)!r}: {error['msg'].lower()}"
            for error in exc.errors()
        ]
        raise InputError(
            "invalid setting in the environment: " + "; ".join(problems),
            hint="set the variable to a valid value, or unset it to use the default "
            "(the README's 'Where things are kept' lists every setting)",
            code="SETTING_INVALID",
        ) from None


def describe(settings: Settings) -> list[SettingSource]:
    """Each setting with the environment variable behind it and whether it was set or defaulted."""
    rows = []
    for name in Settings.model_fields:
        env_var = f"{ENV_PREFIX}{name.upper()}"
        source = "environment" if env_var in os.environ else "default"
        rows.append(SettingSource(name, env_var, str(getattr(settings, name)), source))
    return rows


def redact_url(url: str) -> str:
    """Hide a password in a URL before printing it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL (e.g. a broker URL with an odd scheme)
        return url
