"""Helpers for tests that run whole jobs: write a spec next to a shipped data set and run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import DATA

AUTOML = str(Path(sys.executable).with_name("automl"))


def automl_in(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run an ``automl`` command as a user does, in ``tmp_path`` with its store and artifacts there
    (``env``: more settings)."""
    env = {
        **os.environ,
        "AUTOML_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "AUTOML_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run([AUTOML, *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def write_spec(tmp_path: Path, data_file: str, **fields: Any) -> Path:
    """A spec in ``tmp_path`` with a copy of ``jobspecs/data/<data_file>`` beside it."""
    shutil.copy(DATA / data_file, tmp_path / data_file)
    spec: dict[str, Any] = {"spec_version": 1, "name": "test-job", "seed": 0, "n_jobs": 1}
    spec.update(fields)
    spec["dataset"] = {"path": data_file, **fields.get("dataset", {})}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def run_spec(store: Any, artifacts: Any, url: str, spec_path: Path) -> Any:
    from automl.pipeline import run_job, submit_job
    from automl.spec import load_spec_file

    job = submit_job(store, artifacts, load_spec_file(spec_path))
    return run_job(store, artifacts, job.id, url)


def run_one_family_on_titanic(tmp_path: Path, family: str, trials: int) -> tuple[Any, Any, Any, Any, Any]:
    """A seeded titanic job of ``trials`` trials of one family, 3-fold CV, no ensemble, on a fresh
    SQLite store: (store, artifacts, job, its data, its model version), the version with the
    evaluation model that earned its holdout score."""
    from automl.artifacts import ArtifactStore
    from automl.context import load_context
    from automl.store import open_store

    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": None, "trials": trials},
        candidates={"include": [family]},
        cv={"folds": 3},
        ensemble={"enabled": False},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    arts = ArtifactStore(tmp_path / "art")
    job = run_spec(store, arts, url, spec)
    assert job.status == "succeeded"
    version = store.version_for_job(job.id)
    assert version is not None and version.evaluation_uri is not None
    return store, arts, job, load_context(store, arts, job.id).data, version
