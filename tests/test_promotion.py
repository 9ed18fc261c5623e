"""The spec's promotion policy on real jobs: never, always, and if_better (champion/challenger on
the new job's holdout), with both outcomes; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from threadpoolctl import threadpool_limits

from automl.artifacts import ArtifactStore
from automl.context import load_context
from automl.registry import resolve
from automl.store import open_store
from tests.engine_helpers import automl_in, run_spec, write_spec

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`

WEAK_DROP = ["alive", "pclass", "sex", "age", "sibsp", "parch", "fare", "class", "who", "adult_male", "deck", "alone"]


def _job(tmp_path: Path, url: str, artifacts: ArtifactStore, name: str, policy: str, *, weak: bool) -> Any:
    folder = tmp_path / name
    folder.mkdir()
    spec = write_spec(
        folder,
        "titanic.csv",
        dataset={"target": "survived", "drop": WEAK_DROP if weak else ["alive"]},
        task="classification",
        budget={"time_s": None, "trials": 2},
        candidates={"include": ["linear"]},
        cv={"folds": 3},
        ensemble={"enabled": False},
        register={"model_name": "survival", "promote": policy},
    )
    job = run_spec(open_store(url, auto_upgrade=True), artifacts, url, spec)
    assert job.status == "succeeded", (job.error_code, job.error_message)
    return job


def test_promotion_policies(db_url: str, tmp_path: Path) -> None:
    store, artifacts = open_store(db_url, auto_upgrade=True), ArtifactStore(tmp_path / "artifacts")

    never = _job(tmp_path, db_url, artifacts, "never", "never", weak=True)
    assert never.summary["promotion"]["promoted"] is False
    assert store.get_alias("survival", "production") is None

    weak = _job(tmp_path, db_url, artifacts, "weak", "always", weak=True)
    weak_version = store.version_for_job(weak.id)
    assert weak.summary["promotion"]["promoted"] is True
    assert resolve(store, "survival").id == weak_version.id

    strong = _job(tmp_path, db_url, artifacts, "strong", "if_better", weak=False)
    strong_version = store.version_for_job(strong.id)
    decision = strong.summary["promotion"]
    assert decision["promoted"] is True, decision
    champion, challenger = decision["champion"], decision["challenger"]
    assert champion["version_id"] == weak_version.id and challenger["version_id"] == strong_version.id
    assert challenger["holdout_score"] > champion["holdout_score"]  # roc_auc: greater is better
    assert resolve(store, "survival").id == strong_version.id
    event = store.list_alias_events("survival", "production")[-1]
    assert event.to_version_id == strong_version.id and event.from_version_id == weak_version.id
    assert event.details["champion"]["holdout_score"] == champion["holdout_score"]
    assert event.details["challenger"]["holdout_score"] == challenger["holdout_score"]
    assert event.actor == strong.submitted_by and f"job {strong.id}" in (event.reason or "")

    # The same spec again makes an equal model: equal is not better, so the champion stays.
    again = _job(tmp_path, db_url, artifacts, "again", "if_better", weak=False)
    kept = again.summary["promotion"]
    assert kept["promoted"] is False and kept["decision"].startswith("kept"), kept
    assert kept["champion"]["holdout_score"] == kept["challenger"]["holdout_score"]
    assert resolve(store, "survival").id == strong_version.id
    assert len(store.list_alias_events("survival")) == 2  # weak (always), strong (if_better)
    json.dumps(kept)  # the summary is plain JSON


def _forest_job(
    folder: Path, url: str, artifacts: ArtifactStore, data: Path, seed: int, policy: str
) -> tuple[Any, Any]:
    folder.mkdir()
    (folder / "titanic.csv").write_bytes(data.read_bytes())
    spec = {
        "spec_version": 1, "name": "forest", "seed": seed, "n_jobs": 1, "task": "classification",
        "dataset": {"path": "titanic.csv", "target": "survived", "drop": ["alive"]},
        "budget": {"time_s": None, "trials": 2}, "candidates": {"include": ["random_forest"]},
        "cv": {"folds": 3}, "ensemble": {"enabled": False},
        "register": {"model_name": "forest", "promote": policy},
    }  # fmt: skip
    (folder / "spec.json").write_text(json.dumps(spec))
    store = open_store(url, auto_upgrade=True)
    job = run_spec(store, artifacts, url, folder / "spec.json")
    assert job.status == "succeeded", (job.error_code, job.error_message)
    return job, store.version_for_job(job.id)


def test_the_gate_compares_on_rows_neither_model_trained_on(db_url: str, tmp_path: Path) -> None:
    """A forest scores far better on rows it trained on: a gate that let the champion see its own
    training rows would keep it out of reach. Different seeds, and data that extends the first."""
    import pandas as pd

    from tests.conftest import DATA

    artifacts = ArtifactStore(tmp_path / "artifacts")
    full = pd.read_csv(DATA / "titanic.csv")
    first = tmp_path / "first.csv"
    full.head(600).to_csv(first, index=False)  # the champion's data: the first 600 rows
    champion_job, champion = _forest_job(tmp_path / "a", db_url, artifacts, first, seed=1, policy="always")
    assert champion.evaluation_uri is not None  # registered on every row, scored by a fit that was not

    extended = tmp_path / "extended.csv"
    full.to_csv(extended, index=False)
    for name, data, seed in (("b", first, 7), ("c", extended, 3)):
        job, _ = _forest_job(tmp_path / name, db_url, artifacts, data, seed=seed, policy="if_better")
        decision = job.summary["promotion"]
        assert decision["compared"]["rows"] >= 10, decision
        assert "neither model trained on them" in decision["compared"]["why"]
        gate_score = decision["champion"]["holdout_score"]
        # The champion's evaluation fit scored on exactly this job's holdout rows (all of them are
        # clean here: same fraction), and far below what it scores on rows it trained on.
        # The champion is the version in production when the job ran: v1 for "b", "b"'s if it won.
        store = open_store(db_url)
        incumbent = store.get_model_version(decision["champion"]["version_id"])
        ctx = load_context(store, artifacts, job.id)
        evaluation = artifacts.get_object(incumbent.evaluation_uri or "", incumbent.evaluation_sha256 or "")
        assert decision["compared"]["rows"] == len(ctx.data.y_holdout)
        with threadpool_limits(1):
            again = ctx.data.metric.score(ctx.data.y_holdout, evaluation.predict_proba(ctx.data.X_holdout))
            champion_data = load_context(store, artifacts, incumbent.job_id).data
            seen = champion_data.metric.score(champion_data.y, evaluation.predict_proba(champion_data.X))
        assert gate_score == pytest.approx(again, abs=1e-12)
        assert seen > gate_score + 0.05, (seen, gate_score)
        challenger = decision["challenger"]["holdout_score"]
        assert decision["promoted"] is (challenger > gate_score), decision
        if name == "b":  # the same rows: both were held out by the same row hash
            assert decision["compared"]["rows"] == champion_job.summary["holdout_split"]["rows"]
            assert gate_score == champion.holdout_score


def test_if_better_with_lightgbm_on_both_sides_ends(tmp_path: Path) -> None:
    """The gate scores champion and challenger after the finalizer has loaded the new model's
    LightGBM members; loading LightGBM again in a forked child hung there (OpenMP does not survive
    a fork) until a 900 s deadline. Two LightGBM jobs in a row: the second decides at once. Run as
    users run it (`automl run`): OpenMP in the test process itself is kept on one thread."""
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        spec = write_spec(
            folder, "titanic.csv", dataset={"target": "survived", "drop": ["alive"]}, task="classification",
            budget={"time_s": None, "trials": 2}, candidates={"include": ["lightgbm"]}, cv={"folds": 3},
            register={"model_name": "boosted", "promote": "if_better"}, n_jobs=-1,
        )  # fmt: skip
        started = time.monotonic()
        result = automl_in(tmp_path, "run", str(spec))
        assert result.returncode == 0, result.stdout + result.stderr
        assert time.monotonic() - started < 300
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    job = max(store.list_jobs(), key=lambda j: j.id)
    decision = job.summary["promotion"]
    assert decision["champion"]["holdout_score"] is not None, decision
    assert decision["decision"].startswith(("promoted", "kept v1: its")), decision
