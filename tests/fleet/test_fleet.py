"""The worker fleet on real services: PostgreSQL, Redis, and `automl worker` processes."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engine_helpers import write_spec
from tests.fleet.conftest import PG_START, PG_STOP, REDIS_START, Fleet

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`


def _spec(tmp_path: Path, **budget: Any) -> Path:
    return write_spec(
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget=budget,
        candidates={"include": ["linear", "random_forest", "extra_trees", "hist_gradient_boosting"]},
        cv={"folds": 3},
    )


def _trials(fleet: Fleet, job_id: int) -> list[Any]:
    store = fleet.store()
    try:
        return [r for r in store.list_runs(job_id) if r.kind == "trial"]
    finally:
        store.close()


def _versions(fleet: Fleet, job_id: int) -> list[Any]:
    store = fleet.store()
    try:
        return [v for v in store.list_model_versions() if v.job_id == job_id]
    finally:
        store.close()


def test_submit_runs_on_a_worker_process(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_worker()
    job_id = fleet.submit(_spec(tmp_path, time_s=90, trials=6), "--parallel", "1")
    job = fleet.wait_done(job_id)
    assert job.status == "succeeded", (job.error_code, job.error_message, fleet.logs())
    assert len(_versions(fleet, job_id)) == 1
    trials = _trials(fleet, job_id)
    assert len(trials) == 6 and all(r.worker for r in trials)
    board = fleet.automl("leaderboard", str(job_id), "--format", "csv")
    assert board.returncode == 0 and len(board.stdout.strip().splitlines()) == 1 + 6 + 1  # header, trials, ensemble
    status = fleet.automl("status", str(job_id))
    assert "succeeded" in status.stdout


def test_two_workers_share_one_study_and_one_runs_table(fleet: Fleet, tmp_path: Path) -> None:
    import optuna

    from automl.store.urls import normalize_url

    fleet.start_worker()
    fleet.start_worker()
    job_id = fleet.submit(_spec(tmp_path, time_s=120, trials=12), "--parallel", "2")
    job = fleet.wait_done(job_id, timeout=240)
    assert job.status == "succeeded", (job.error_code, job.error_message)
    trials = _trials(fleet, job_id)
    assert len(trials) == 12
    hosts = {r.worker.rsplit(":", 1)[-1] for r in trials if r.worker}
    assert len(hosts) >= 2, hosts  # trials ran in both worker processes
    storage = normalize_url(fleet.env["AUTOML_DATABASE_URL"])
    study = optuna.load_study(study_name=f"automl-job-{job_id}", storage=storage)
    assert sorted(t.number for t in study.trials) == sorted(r.trial_number for r in trials)
    assert len(_versions(fleet, job_id)) == 1


def test_a_worker_killed_mid_trial_loses_no_job(fleet: Fleet, tmp_path: Path) -> None:
    import optuna

    from automl.store.urls import normalize_url

    first = fleet.start_worker()
    fleet.start_worker()
    spec = write_spec(  # forests: trials of a second or more, so the kill lands inside one
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": 150, "trials": 14},  # the cap ends it; the time only bounds a failure
        candidates={"include": ["random_forest", "extra_trees"]},
        cv={"folds": 3},
    )
    job_id = fleet.submit(spec, "--parallel", "2")
    store = fleet.store()
    pids: list[str] = []
    end = time.monotonic() + 90
    while time.monotonic() < end:  # wait for a trial running in the first worker's pool
        pids = subprocess.run(["pgrep", "-g", str(first.pid)], capture_output=True, text=True).stdout.split()
        running = [r for r in store.list_runs(job_id) if r.status == "running" and r.worker]
        if any(r.worker.rsplit(":", 1)[-1] in pids for r in running):
            break
        time.sleep(0.1)
    fleet.kill_worker(first)
    # The trials the dead worker left behind: still "running" in the store after the kill.
    victims = [
        r for r in store.list_runs(job_id) if r.status == "running" and r.worker and r.worker.rsplit(":", 1)[-1] in pids
    ]
    store.close()
    assert victims, "no trial was running in the first worker when it was killed"
    job = fleet.wait_done(job_id, timeout=240)
    assert job.status == "succeeded", (job.error_code, job.error_message, fleet.logs())
    store = fleet.store()
    for victim in victims:
        killed = store.get_run(victim.id)
        assert killed.status == "failed" and killed.error_code == "WORKER_LOST"
    # No zombie in the study: the lost run's trial and any trial the dead worker had drawn ahead
    # are FAIL; the cap counts the trials that ran (a slot the dead worker claimed, drawn ahead or
    # not yet drawn when it died, is given back).
    study = optuna.load_study(
        study_name=f"automl-job-{job_id}", storage=normalize_url(fleet.env["AUTOML_DATABASE_URL"])
    )
    assert not [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    trials = _trials(fleet, job_id)
    assert len(trials) == 14, [(r.trial_number, r.status) for r in trials]
    for victim in victims:
        assert study.trials[victim.trial_number].state == optuna.trial.TrialState.FAIL
    store.close()
    assert len(_versions(fleet, job_id)) == 1


def test_redelivered_messages_do_not_duplicate_trials_or_versions(fleet: Fleet, tmp_path: Path) -> None:
    from automl.config import Settings
    from workers.app import create_app

    app = create_app(Settings(broker_url=fleet.env["AUTOML_BROKER_URL"]))
    fleet.start_worker()
    job_id = fleet.submit(_spec(tmp_path, time_s=90, trials=5), "--parallel", "1")
    for _ in range(2):  # the same messages again, as Redis would redeliver them
        app.send_task("automl.start_job", args=[job_id, 1])
        app.send_task("automl.run_trials", args=[job_id])
    job = fleet.wait_done(job_id)
    assert job.status == "succeeded"
    app.send_task("automl.finalize", args=[job_id])
    app.send_task("automl.run_trials", args=[job_id])
    time.sleep(3)
    assert len(_trials(fleet, job_id)) == 5
    assert len(_versions(fleet, job_id)) == 1
    store = fleet.store()
    assert store.get_job(job_id).status == "succeeded"
    store.close()


def test_cancel_a_queued_job_and_a_running_job(fleet: Fleet, tmp_path: Path) -> None:
    queued = fleet.submit(_spec(tmp_path, time_s=60))
    assert "cancelled" in fleet.automl("cancel", str(queued)).stdout
    fleet.start_worker()
    running = fleet.submit(_spec(tmp_path, time_s=120), "--parallel", "1")
    fleet.wait(running, lambda j: j.trials_started >= 2, 90, "trials to start")
    assert fleet.automl("cancel", str(running)).returncode == 0
    job = fleet.wait_done(running, timeout=60)
    assert job.status == "cancelled"
    assert _versions(fleet, running) == []
    assert not any(r.status == "running" for r in _trials(fleet, running))
    store = fleet.store()
    assert store.get_job(queued).status == "cancelled" and store.list_runs(queued) == []
    store.close()


def _shell(command: str) -> None:
    subprocess.run(["bash", "-c", command], check=True, timeout=60, capture_output=True)


def test_redis_restart_in_the_middle_of_a_job(fleet: Fleet, tmp_path: Path) -> None:
    fleet.env["AUTOML_TRIAL_SLICE_S"] = "8"  # trial tasks hand over often: messages must flow after the restart
    fleet.start_worker()
    job_id = fleet.submit(_spec(tmp_path, time_s=30), "--parallel", "1")
    fleet.wait(job_id, lambda j: j.trials_started >= 2, 90, "trials to start")
    _shell("redis-cli -p 6379 shutdown nosave || true")
    time.sleep(2)
    _shell(REDIS_START)
    job = fleet.wait_done(job_id, timeout=180)
    if job.status != "succeeded":  # Redis kept no messages across the restart: resume re-enqueues
        pytest.fail(f"job ended {job.status}: {job.error_code} {job.error_message}\n{fleet.logs()}")
    assert len(_versions(fleet, job_id)) == 1


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None, reason="needs the machine's PostgreSQL cluster tools")
def test_postgresql_down_for_20_seconds(fleet: Fleet, tmp_path: Path) -> None:
    fleet.start_worker()
    job_id = fleet.submit(_spec(tmp_path, time_s=45), "--parallel", "1")
    fleet.wait(job_id, lambda j: j.trials_started >= 2, 90, "trials to start")
    _shell(PG_STOP)
    try:
        time.sleep(20)
    finally:
        _shell(PG_START)
    time.sleep(2)
    job = fleet.wait_done(job_id, timeout=240)
    if job.status == "failed":
        assert job.error_code == "STORE_UNAVAILABLE"
        assert fleet.automl("jobs", "resume", str(job_id)).returncode == 0
        job = fleet.wait_done(job_id, timeout=240)
    assert job.status == "succeeded", (job.error_code, job.error_message, fleet.logs())
    assert len(_versions(fleet, job_id)) == 1


def test_retrain_submitted_to_the_fleet_warm_starts_on_the_same_worker(fleet: Fleet, tmp_path: Path) -> None:
    """`automl retrain --submit`: the new job runs on the worker that finalized the first one. That
    worker loaded the first model's LightGBM members (on all cores, n_jobs -1); its trial children
    forked afterwards must not hang in OpenMP."""
    spec = write_spec(
        tmp_path, "titanic.csv", dataset={"target": "survived", "drop": ["alive"]}, task="classification",
        budget={"time_s": 120, "trials": 4}, candidates={"include": ["linear", "lightgbm"]}, cv={"folds": 3},
        register={"model_name": "fleet-titanic", "promote": "if_better"}, n_jobs=-1,
    )  # fmt: skip
    fleet.start_worker()
    first = fleet.wait_done(fleet.submit(spec, "--parallel", "1"))
    assert first.status == "succeeded", (first.error_code, first.error_message, fleet.logs())
    done = fleet.automl(
        "retrain", "fleet-titanic", "--data", str(tmp_path / "titanic.csv"), "--trials", "4", "--submit", "--wait",
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr, fleet.logs())
    store = fleet.store()
    try:
        second = store.list_jobs(limit=1)[0]
        assert second.id != first.id and second.status == "succeeded"
        assert second.summary["warm_start"]["job_id"] == first.id
        assert all(r.status != "timeout" for r in store.list_runs(second.id))
        assert second.summary["promotion"]["decision"]
    finally:
        store.close()
