"""Whole jobs on real data: determinism, failing families, budgets, ensembles, artifacts, views."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from automl.artifacts import ArtifactStore
from automl.context import load_model
from automl.errors import ArtifactCorrupt
from automl.registry import model_card
from automl.store import open_store
from tests.conftest import DATA
from tests.engine_helpers import automl_in, run_spec, write_spec

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`

FAST = ["linear", "random_forest", "hist_gradient_boosting"]


def _board(store: Any, job_id: int) -> list[tuple[Any, ...]]:
    return [
        (r.trial_number, r.family, json.dumps(r.params, sort_keys=True), r.status, r.cv_score)
        for r in store.list_runs(job_id)
        if r.kind == "trial"
    ]


def _eight_penguin_trials(tmp_path: Path, **fields: Any) -> Path:
    """A spec of 8 trials of the fast families on penguins, 3-fold."""
    return write_spec(
        tmp_path,
        "penguins.csv",
        dataset={"target": "species"},
        task="classification",
        budget={"time_s": None, "trials": 8},
        candidates={"include": FAST},
        cv={"folds": 3},
        **fields,
    )


def test_same_seed_and_trial_budget_give_the_same_leaderboard(tmp_path: Path) -> None:
    spec = _eight_penguin_trials(tmp_path)
    boards = []
    for attempt in range(2):
        url = f"sqlite:///{tmp_path / f'run{attempt}.db'}"
        store = open_store(url)
        job = run_spec(store, ArtifactStore(tmp_path / f"art{attempt}"), url, spec)
        assert job.status == "succeeded"
        boards.append(_board(store, job.id))
    assert len(boards[0]) == 8
    assert boards[0] == boards[1]


def _broken_build(params: dict[str, Any], task: str, seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    class Broken(LogisticRegression):  # type: ignore[misc]
        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
            raise RuntimeError("this family always fails")

    return Broken()


def test_a_family_that_always_raises_fails_its_runs_not_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl import candidates

    broken = dataclasses.replace(candidates.FAMILIES["knn"], build=_broken_build)
    monkeypatch.setitem(candidates.FAMILIES, "knn", broken)
    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": None, "trials": 4},
        candidates={"include": ["knn", "linear"]},
        cv={"folds": 3},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    job = run_spec(store, ArtifactStore(tmp_path / "art"), url, spec)
    assert job.status == "succeeded"
    runs = [r for r in store.list_runs(job.id) if r.kind == "trial"]
    knn_runs = [r for r in runs if r.family == "knn"]
    assert knn_runs and all(r.status == "failed" for r in knn_runs)
    assert all("this family always fails" in (r.error_message or "") for r in knn_runs)
    assert all(r.error_code == "TRIAL_FAILED" for r in knn_runs)
    assert (job.summary or {})["best"]["family"] == "linear"


def test_trials_run_side_by_side_and_each_ends_with_its_study_trial(tmp_path: Path) -> None:
    from itertools import combinations

    import optuna

    from automl.config import available_cores
    from automl.tuning import load_job_study

    # Through `automl run`, as a user runs it: the job's process forks every fit (a process that
    # ran a multi-threaded OpenMP fit itself, as this test process may have, cannot fork one).
    spec = _eight_penguin_trials(tmp_path, n_jobs=-1)
    done = automl_in(tmp_path, "run", str(spec), "--quiet", env={"AUTOML_PARALLEL_TRIALS": "2"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(2 at once" in done.stdout  # the summary says how the trials ran
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    job = store.get_job(1)
    assert job.status == "succeeded"
    assert (job.summary or {})["trials_at_once"] == {"trials": 2, "threads_each": max(1, available_cores() // 2)}
    runs = [r for r in store.list_runs(job.id) if r.kind == "trial"]
    assert len(runs) == 8
    assert all(r.status in ("succeeded", "pruned") and r.finished_at is not None for r in runs)
    overlapping = [
        (a.trial_number, b.trial_number)
        for a, b in combinations(runs, 2)
        if a.started_at < b.finished_at and b.started_at < a.finished_at  # type: ignore[operator]
    ]
    assert overlapping, "no two trials ran at the same time"
    study = load_job_study(url, job.id)
    assert study is not None
    states = {t.number: t.state for t in study.trials}
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert sorted(n for n, state in states.items() if state in finished) == sorted(r.trial_number for r in runs)
    assert not [n for n, state in states.items() if state == optuna.trial.TrialState.RUNNING]


def test_time_budget_is_a_wall(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": 12},
        cv={"folds": 3},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    started = time.monotonic()
    job = run_spec(store, ArtifactStore(tmp_path / "art"), url, spec)
    elapsed = time.monotonic() - started
    assert job.status == "succeeded"
    timing = (job.summary or {})["timing"]
    assert timing["elapsed_s"] <= 12 * 1.05 + 0.5
    assert elapsed <= 12 * 1.25 + 3  # loose: includes submit and process start-up


def test_ensemble_is_dropped_when_it_is_not_better(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from automl import ensemble

    real = ensemble.greedy_select

    def worst_pair(predictions: list[np.ndarray], y: np.ndarray, metric: Any, max_size: int, **_: Any) -> Any:
        scores = [metric.score(y, p) for p in predictions]
        order = np.argsort(scores)
        best, worst = (order[-1], order[0]) if metric.greater_is_better else (order[0], order[-1])
        # an even blend with the worst candidate: a real selection would never pick this
        return ensemble.EnsembleChoice([int(best), int(worst)], [0.5, 0.5], 0.0)

    monkeypatch.setattr(ensemble, "greedy_select", worst_pair)
    spec = write_spec(
        tmp_path,
        "diabetes.csv",
        dataset={"target": "target"},
        task="regression",
        budget={"time_s": None, "trials": 4},
        candidates={"include": ["linear", "knn"]},
        cv={"folds": 3},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    job = run_spec(store, ArtifactStore(tmp_path / "art"), url, spec)
    summary = job.summary or {}
    assert summary["final"] == "single"
    assert summary["ensemble"]["used"] is False
    ens_runs = [r for r in store.list_runs(job.id) if r.kind == "ensemble"]
    assert len(ens_runs) == 1  # recorded as a run even though it lost
    version = store.version_for_job(job.id)
    assert version is not None and version.run_id == summary["best"]["run_id"]
    assert real is not ensemble.greedy_select


def test_a_class_seen_once_is_left_out_and_the_job_still_ends_with_a_model(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "penguins.csv",
        dataset={"target": "species"},
        task="classification",
        budget={"time_s": None, "trials": 2},
        candidates={"include": ["linear"]},
        cv={"folds": 3},
    )
    frame = pd.read_csv(DATA / "penguins.csv")
    frame.loc[5, "species"] = "Unseen"  # a class of one row
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    arts = ArtifactStore(tmp_path / "art")
    job = run_spec(store, arts, url, spec)
    assert job.status == "succeeded", job.error_message
    [warning] = [w for w in job.profile["warnings"] if "'Unseen'" in w]
    assert "1 row(s) are left out" in warning
    version = store.version_for_job(job.id)
    model = load_model(store, arts, version.id)
    assert list(model.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame), 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert warning in model_card(store, version)["dataset"]["warnings"]
    shown = automl_in(tmp_path, "jobs", "show", str(job.id), env={"AUTOML_ARTIFACT_ROOT": str(tmp_path / "art")})
    assert "'Unseen'" in shown.stdout, shown.stdout + shown.stderr


def test_ensemble_is_used_when_better_and_predicts_like_its_blend(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": None, "trials": 6},
        candidates={"include": ["linear", "random_forest", "knn"]},
        cv={"folds": 3},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    arts = ArtifactStore(tmp_path / "art")
    job = run_spec(store, arts, url, spec)
    summary = job.summary or {}
    ens = store.get_run(summary["ensemble"]["run_id"])
    best = store.get_run(summary["best"]["run_id"])
    assert ens.cv_score is not None and best.cv_score is not None
    assert summary["final"] == ("ensemble" if ens.cv_score > best.cv_score else "single")
    version = store.version_for_job(job.id)
    assert version is not None
    model = load_model(store, arts, version.id)
    frame = pd.read_csv(DATA / "titanic.csv").drop(columns=["survived", "alive"])
    proba = model.predict_proba(frame.head(50))
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(frame.head(50))) <= {0, 1}


@pytest.fixture(scope="module")
def titanic_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ArtifactStore, Any]:
    tmp_path = tmp_path_factory.mktemp("titanic")
    spec = write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        metric="accuracy",
        budget={"time_s": 90, "trials": 8},
        candidates={"include": FAST},
        cv={"folds": 3},
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    arts = ArtifactStore(tmp_path / "art")
    return store, arts, run_spec(store, arts, url, spec)


def test_saved_model_takes_raw_rows_with_unseen_categories_and_missing_values(titanic_job: Any) -> None:
    store, arts, job = titanic_job
    version = store.version_for_job(job.id)
    model = load_model(store, arts, version.id)
    raw = pd.read_csv(DATA / "titanic.csv", dtype=str).head(20)  # every value a string, as in a CSV
    raw.loc[0, "embarked"] = "Atlantis"  # a category never seen in training
    raw.loc[1, "sex"] = "unknown"
    raw.loc[2, ["age", "fare", "deck"]] = None  # missing values
    raw["extra_column"] = "ignored"
    predictions = model.predict(raw)
    assert len(predictions) == 20
    assert set(predictions) <= {0, 1}
    schema_columns = {c["name"] for c in version.input_schema}
    assert "alive" not in schema_columns and "survived" not in schema_columns


def test_checksum_refuses_a_tampered_model(titanic_job: Any) -> None:
    store, arts, job = titanic_job
    version = store.version_for_job(job.id)
    path = arts.path(version.artifact_uri)
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-10] + b"0123456789")
        with pytest.raises(ArtifactCorrupt, match=str(path)):
            load_model(store, arts, version.id)
    finally:
        path.write_bytes(original)
    assert load_model(store, arts, version.id) is not None


def test_job_records_what_built_it(titanic_job: Any) -> None:
    store, _, job = titanic_job
    assert len(job.spec_hash) == 64
    assert job.environment and "scikit-learn" in job.environment and "python" in job.environment
    assert job.selection and {c["family"] for c in job.selection if c["selected"]} == set(FAST)
    assert "alive" in job.profile["dropped"]
    dataset = store.get_dataset(job.dataset_id)
    assert len(dataset.fingerprint) == 64
    trial_runs = [r for r in store.list_runs(job.id) if r.kind == "trial"]
    assert len(trial_runs) == 8
    for run in trial_runs:
        assert run.params is not None and run.worker
        if run.status == "succeeded":
            assert run.fold_scores and len(run.fold_scores) == 3 and run.fit_seconds is not None


def _leaderboard_sql(url: str, job_id: int) -> list[Any]:
    store = open_store(url)
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            text("SELECT rank, family, status, cv_score FROM leaderboard WHERE job_id = :j ORDER BY run_id"),
            {"j": job_id},
        ).all()
        versions = conn.execute(
            text("SELECT model_name, version, winner_family, trials FROM model_version_summary")
        ).all()
    store.close()
    return [rows, versions]


def test_leaderboard_views_answer_plain_sql(db_url: str, tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "penguins.csv",
        dataset={"target": "species"},
        task="classification",
        budget={"time_s": None, "trials": 4},
        candidates={"include": ["linear", "random_forest"]},
        cv={"folds": 3},
        register={"model_name": "penguins-sql"},
    )
    store = open_store(db_url, auto_upgrade=True)
    job = run_spec(store, ArtifactStore(tmp_path / "art"), db_url, spec)
    rows, versions = _leaderboard_sql(db_url, job.id)
    succeeded = [r for r in rows if r.status == "succeeded"]
    assert succeeded and all(r.rank is not None for r in succeeded)
    ranked = sorted(succeeded, key=lambda r: r.rank)
    scores = [r.cv_score for r in ranked]
    assert scores == sorted(scores)  # log_loss: lower is better, rank 1 is the lowest
    assert [(v.model_name, v.version, v.trials) for v in versions] == [("penguins-sql", 1, 4)]


def test_worth_checking_asks_only_when_the_rest_of_the_trial_is_long() -> None:
    from automl.training import CHECK_MIN_REMAINING_S, worth_checking

    fold_s = CHECK_MIN_REMAINING_S / 2
    assert worth_checking(0, 5, fold_s)  # four folds of half the threshold are left
    assert worth_checking(2, 5, 3 * fold_s)  # exactly the threshold is left
    assert not worth_checking(3, 5, 4 * fold_s)  # one fold left: not worth a round trip
    assert not worth_checking(4, 5, 1000.0)  # nothing left to save after the last fold
    assert not worth_checking(0, 5, CHECK_MIN_REMAINING_S / 10)  # fast folds never ask


def test_poor_trials_are_pruned_and_the_study_matches_the_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from automl import training
    from automl.tuning import study_name

    monkeypatch.setattr(training, "CHECK_MIN_REMAINING_S", 0.0)  # forked trials inherit it: check every fold
    spec = write_spec(
        tmp_path,
        "penguins.csv",
        dataset={"target": "species"},
        task="classification",
        budget={"time_s": None, "trials": 24},
        candidates={"include": ["linear", "knn"]},
        cv={"folds": 5},
        ensemble={"enabled": False},
    )
    url = f"sqlite:///{tmp_path / 'prune.db'}"
    store = open_store(url)
    job = run_spec(store, ArtifactStore(tmp_path / "art"), url, spec)
    assert job.status == "succeeded"
    runs = [r for r in store.list_runs(job.id) if r.kind == "trial"]
    assert len(runs) == 24
    pruned = [r for r in runs if r.status == "pruned"]
    assert pruned, [r.status for r in runs]
    assert all(r.fold_scores and len(r.fold_scores) < 5 for r in pruned)
    # Trials are drawn one ahead of the one running: none may be left behind in the study.
    study = optuna.load_study(study_name=study_name(job.id), storage=url)
    states = {t.number: t.state.name for t in study.trials}
    assert "RUNNING" not in states.values()
    assert sorted(states) == sorted(r.trial_number for r in runs)
    assert {r.trial_number for r in pruned} == {n for n, s in states.items() if s == "PRUNED"}
