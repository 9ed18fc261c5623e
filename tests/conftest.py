"""Shared fixtures: fresh databases per test on SQLite and on the real PostgreSQL server.

PostgreSQL tests use the server on 127.0.0.1:5432 (database ``test``), each in a schema of its
own. Outside CI they skip when the server is down; with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_DSN = os.environ.get("AUTOML_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_URL = os.environ.get("AUTOML_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
DATA = REPO / "jobspecs" / "data"


def _pg_available() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def pg_server() -> None:
    problem = _pg_available()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def backend_url(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """Like ``db_url``, for a fixture of any scope parametrized over ``["sqlite", "postgresql"]``:
    an SQLite file in ``folder``, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    request.getfixturevalue("pg_server")
    with pg_schema_url() as url:
        yield url


# Three small models, each trained once per backend and put in production: titanic (binary),
# penguins (multiclass) and diabetes (regression); the HTTP server's and `automl predict`'s tests
# share them (the server's tests leave every alias as they found it).
TRAINED = {  # model name → (file, dataset spec, task)
    "titanic": ("titanic.csv", {"target": "survived", "drop": ["alive"]}, "classification"),
    "penguins": ("penguins.csv", {"target": "species"}, "classification"),
    "diabetes": ("diabetes.csv", {"target": "target"}, "regression"),
}


@dataclass
class Trained:
    url: str
    store: Any  # automl.store.base.Store
    artifacts: Any  # automl.artifacts.ArtifactStore
    versions: dict[str, Any]  # model name → its ModelVersionRecord in production
    folder: Path


def train_model(folder: Path, store: Any, arts: Any, url: str, name: str, **fields: Any) -> Any:
    """A seeded 4-trial job (linear and random forest, 3 folds) on one of :data:`TRAINED`, registered
    under ``name``; ``fields`` override the spec's (e.g. ``seed``, ``candidates``)."""
    from tests.engine_helpers import run_spec, write_spec

    data_file, dataset, task = TRAINED[name]
    job_dir = folder / f"{name}-{fields.get('seed', 0)}"
    job_dir.mkdir()
    spec: dict[str, Any] = {
        "budget": {"time_s": None, "trials": 4},
        "candidates": {"include": ["linear", "random_forest"]},
    }
    spec.update(fields)
    path = write_spec(
        job_dir, data_file, dataset=dataset, task=task, cv={"folds": 3}, register={"model_name": name}, **spec
    )
    job = run_spec(store, arts, url, path)
    assert job.status == "succeeded", job.error_message
    version = store.version_for_job(job.id)
    assert version is not None
    return version


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """:data:`TRAINED`'s models on a store of each backend, each in production."""
    from automl import registry
    from automl.artifacts import ArtifactStore
    from automl.store import open_store

    folder = tmp_path_factory.mktemp(f"trained-{request.param}")
    with backend_url(request, folder) as url:
        store = open_store(url, auto_upgrade=True)
        arts = ArtifactStore(folder / "artifacts")
        versions = {name: train_model(folder, store, arts, url, name) for name in TRAINED}
        for name, version in versions.items():
            registry.promote(store, arts, name, version.id, by="fixture")
        yield Trained(url, store, arts, versions, folder)
        store.close()


@pytest.fixture
def pg_url(pg_server: None) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    from automl.store import open_store

    s = open_store(db_url, auto_upgrade=True)
    yield s
    s.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> object:
    from automl.artifacts import ArtifactStore

    return ArtifactStore(tmp_path / "artifacts")


def record_fit_rounds(cls: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None, int, int]]:
    """Record each ``_fit_rounds`` call of the booster class ``cls``: (training rows, validation
    rows, cap, rounds kept)."""
    calls: list[tuple[int, int | None, int, int]] = []
    real = cls._fit_rounds

    def fit_rounds(self: Any, X: Any, y: Any, valid: Any, rounds: int, deadline: Any) -> Any:
        model, kept = real(self, X, y, valid, rounds, deadline)
        calls.append((len(y), None if valid is None else len(valid[1]), rounds, kept))
        return model, kept

    monkeypatch.setattr(cls, "_fit_rounds", fit_rounds)
    return calls
