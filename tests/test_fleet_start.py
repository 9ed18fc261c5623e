"""Starting a job on a worker: any failure ends the job `failed` with the error, never `running`."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from automl.artifacts import ArtifactStore
from automl.fleet import Dispatch, start
from automl.pipeline import submit_job
from automl.spec import load_spec_file
from automl.store import open_store
from tests.engine_helpers import write_spec


def test_a_job_that_cannot_start_ends_failed_with_the_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, artifacts = open_store(url), ArtifactStore(tmp_path / "art")
    spec = write_spec(tmp_path, "diabetes.csv", dataset={"target": "target"}, task="regression")
    job = submit_job(store, artifacts, load_spec_file(spec))
    # A stored spec that no longer validates (written by an older version without override checks).
    document = dict(job.spec)
    document["budget"] = {**document["budget"], "time_s": -5}
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("UPDATE jobs SET spec = :spec WHERE id = :id"), {"spec": json.dumps(document), "id": job.id})
    sent: list[int] = []
    dispatch = Dispatch(run_trials=sent.append, finalize=sent.append, check_later=lambda j, d: sent.append(j))
    assert start(store, artifacts, job.id, dispatch, parallel=2) == "failed"
    ended = store.get_job(job.id)
    assert ended.status == "failed" and ended.error_code == "INTERNAL_ERROR"
    assert "starting the job failed" in (ended.error_message or "") and "time_s" in (ended.error_message or "")
    assert sent == []  # no trial task was sent for a job that did not start


def test_a_worker_gives_each_trial_its_share_of_the_cores_unless_the_spec_names_a_count(tmp_path: Path) -> None:
    from automl.context import load_context

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, artifacts = open_store(url), ArtifactStore(tmp_path / "art")
    every_core = submit_job(store, artifacts, load_spec_file(write_spec(tmp_path, "diabetes.csv",
                            dataset={"target": "target"}, task="regression", n_jobs=-1)))  # fmt: skip
    assert load_context(store, artifacts, every_core.id).data.n_jobs == -1  # in one process: every core
    assert load_context(store, artifacts, every_core.id, threads=1).data.n_jobs == 1  # a worker's share
    (tmp_path / "named").mkdir()
    named = submit_job(store, artifacts, load_spec_file(write_spec(tmp_path / "named", "diabetes.csv",
                       dataset={"target": "target"}, task="regression", n_jobs=2)))  # fmt: skip
    assert load_context(store, artifacts, named.id, threads=1).data.n_jobs == 2  # the spec's own count


def test_every_worker_keeps_back_the_finalizing_time_of_the_jobs_trials_not_only_its_own(tmp_path: Path) -> None:
    import time

    from automl.store.records import RunResult
    from automl.tuning import Scored, TuneLimits, TuneProgress, reserve_seconds, scored_trials

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, artifacts = open_store(url), ArtifactStore(tmp_path / "art")
    job = submit_job(store, artifacts, load_spec_file(write_spec(tmp_path, "diabetes.csv",
                     dataset={"target": "target"}, task="regression")))  # fmt: skip
    # One worker ran two cheap trials; the other the best one, a slow CatBoost, and one that failed.
    done = [("a", "linear", 60.0, 0.1), ("a", "knn", 62.0, 0.1), ("b", "catboost", 55.0, 12.0)]
    for number, (worker, family, score, fit_s) in enumerate(done):
        run = store.start_run(job.id, "trial", family, {}, trial_number=number, worker=worker)
        store.finish_run(run.id, RunResult(status="succeeded", cv_score=score, fit_seconds=fit_s))
    failed = store.start_run(job.id, "trial", "xgboost", {}, trial_number=3, worker="b")
    store.finish_run(failed.id, RunResult(status="failed", error_code="TRIAL_FAILED"))

    scored = scored_trials(store, job.id)
    assert sorted(entry.family for entry in scored) == ["catboost", "knn", "linear"]
    limits = TuneLimits(wall_end=time.monotonic() + 120, trial_cap=None, trial_time_s=None, ensemble_size=5)
    own = TuneProgress(
        started=time.monotonic(), wall_s=120.0, scored=[Scored(60.0, 0.1, "linear"), Scored(62.0, 0.1, "knn")]
    )
    alone = reserve_seconds(own, 1.25, limits, greater_is_better=False)
    shared = reserve_seconds(own, 1.25, limits, greater_is_better=False, scored=scored)
    assert alone < 5.0 < shared  # the CatBoost refit (1.25 x 12 s, with margin) is kept back by both workers


def test_a_worker_whose_tuning_reached_the_finalizing_reserve_hands_the_job_to_the_finalizer(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from automl.fleet import run_trials
    from automl.store.tables import JobRow

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, artifacts = open_store(url), ArtifactStore(tmp_path / "art")
    spec = write_spec(tmp_path, "diabetes.csv", dataset={"target": "target"}, task="regression",
                      budget={"time_s": 600})  # fmt: skip
    job = submit_job(store, artifacts, load_spec_file(spec))
    sent: list[tuple[str, int]] = []
    dispatch = Dispatch(
        run_trials=lambda j: sent.append(("run_trials", j)),
        finalize=lambda j: sent.append(("finalize", j)),
        check_later=lambda j, d: sent.append(("check_later", j)),
    )
    assert start(store, artifacts, job.id, dispatch, parallel=1) == "running"
    # 550 s of the 600 gone: past the wall less the finalizing reserve (60 s before any trial has
    # scored), but 20 s before the last 5 % of the budget, where a worker used to re-enqueue itself.
    began = datetime.now(UTC) - timedelta(seconds=550)
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(JobRow).where(JobRow.id == job.id).values(started_at=began))
    assert store.get_job(job.id).started_at == began
    sent.clear()
    assert run_trials(store, artifacts, job.id, url, dispatch) == "finalizing"
    assert sent == [("finalize", job.id)]  # straight to the finalizer, no trial task re-enqueued
    assert store.list_runs(job.id) == []  # and no trial started past the reserve
