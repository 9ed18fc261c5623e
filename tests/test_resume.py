"""An interrupted `automl run`, as a user meets it: killed (SIGKILL, a reboot), then continued with
`automl jobs resume`; Ctrl-C once (finish with the trials done) and twice (cancel). Real
subprocesses on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from automl.pipeline import process_lost
from automl.store import open_store
from tests.engine_helpers import write_spec

pytestmark = pytest.mark.slow  # whole jobs, worker or server processes: left out by `make test-fast`

AUTOML = str(Path(sys.executable).with_name("automl"))
LEASE_S = 3.0


class Command:
    """An `automl` process in a session of its own, its output collected as it comes."""

    def __init__(self, tmp_path: Path, url: str, *args: str, env_extra: dict[str, str] | None = None) -> None:
        env = {
            **os.environ,
            "AUTOML_DATABASE_URL": url,
            "AUTOML_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
            "AUTOML_TRIAL_LEASE_S": str(LEASE_S),
            "COLUMNS": "200",
            **(env_extra or {}),
        }
        self.proc = subprocess.Popen(
            [AUTOML, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def signal_group(self, sig: int) -> None:  # as a terminal does: the process and its children
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 240) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _spec(tmp_path: Path, trials: int, time_s: float) -> Path:
    return write_spec(  # forests: trials of about a second, so a signal lands inside one
        tmp_path,
        "titanic.csv",
        dataset={"target": "survived", "drop": ["alive"]},
        task="classification",
        budget={"time_s": time_s, "trials": trials},
        candidates={"include": ["random_forest", "extra_trees"]},
        cv={"folds": 3},
        register={"model_name": "titanic"},
    )


def _succeeded_trials(url: str, job_id: int = 1) -> int:
    store = open_store(url)
    try:
        return sum(1 for r in store.list_runs(job_id) if r.kind == "trial" and r.status == "succeeded")
    except Exception:  # the job (or the schema) is not there yet
        return 0
    finally:
        store.close()


def _study_running(url: str, job_id: int) -> list[int]:
    import optuna

    from automl.store.urls import normalize_url

    study = optuna.load_study(study_name=f"automl-job-{job_id}", storage=normalize_url(url))
    return [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


@pytest.fixture
def url(db_url: str) -> str:
    """The store, migrated as `automl db upgrade` does (a server database is not upgraded by `run`)."""
    open_store(db_url, auto_upgrade=True).close()
    return db_url


def test_a_killed_run_is_resumed_with_its_runs_and_the_time_it_had_left(url: str, tmp_path: Path) -> None:
    db_url = url
    run = Command(tmp_path, db_url, "run", str(_spec(tmp_path, trials=6, time_s=300)), "-q")
    _until(lambda: _succeeded_trials(db_url) >= 2, 120, "two finished trials")
    run.signal_group(signal.SIGKILL)
    run.wait(30)

    store = open_store(db_url)
    killed = store.get_job(1)
    assert killed.status == "running" and killed.heartbeat_at is not None  # stranded, as a reboot leaves it
    before = {r.id: r for r in store.list_runs(1)}
    assert sum(1 for r in before.values() if r.status == "succeeded") >= 2
    _until(lambda: process_lost(store.get_job(1), LEASE_S), 30, "the job's heartbeat to go stale")
    listed = subprocess.run(
        [AUTOML, "jobs", "list", "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**os.environ, "AUTOML_DATABASE_URL": db_url, "AUTOML_TRIAL_LEASE_S": str(LEASE_S)},
    )  # fmt: skip
    assert '"process_lost": true' in listed.stdout, listed.stdout + listed.stderr

    resume = Command(tmp_path, db_url, "jobs", "resume", "1", "-q")
    assert resume.wait() == 0, resume.output
    job = store.get_job(1)
    assert job.status == "succeeded", (job.error_code, job.error_message, resume.output)
    assert store.version_for_job(1) is not None
    assert len([v for v in store.list_model_versions("titanic")]) == 1
    after = {r.id: r for r in store.list_runs(1)}
    for run_id, old in before.items():  # every run recorded before the kill is kept
        assert run_id in after
        if old.status == "running":  # the one the kill interrupted: lost, not left running
            assert after[run_id].status == "failed" and after[run_id].error_code == "WORKER_LOST"
        else:
            assert after[run_id].status == old.status
    assert not [r for r in after.values() if r.status == "running"]
    trials = [r for r in after.values() if r.kind == "trial"]
    assert len(trials) == 6  # the cap counts the trials that ran, across both processes
    assert not _study_running(db_url, 1)
    resumes = (job.summary or {})["resumes"]
    assert len(resumes) == 1 and 0 < resumes[0]["used_s"] < 300 and resumes[0]["left_s"] > 0
    assert "resumed at" in resume.output

    again = Command(tmp_path, db_url, "jobs", "resume", "1")  # an ended job: a named error, nothing lost
    assert again.wait(60) == 2
    assert "JOB_NOT_RESUMABLE" in again.output or "already ended" in again.output, again.output
    assert store.get_job(1).status == "succeeded"
    store.close()


# Two trials at once: a press must stop (first) or cancel (second) every running child.
TWO_AT_ONCE = {"AUTOML_PARALLEL_TRIALS": "2"}


def test_ctrl_c_once_finishes_with_the_trials_done(url: str, tmp_path: Path) -> None:
    db_url = url
    run = Command(tmp_path, db_url, "run", str(_spec(tmp_path, trials=500, time_s=600)), env_extra=TWO_AT_ONCE)
    _until(lambda: _succeeded_trials(db_url) >= 3, 120, "three finished trials")
    run.signal_group(signal.SIGINT)
    assert run.wait() == 0, run.output
    assert "press Ctrl-C again to cancel" in run.output

    store = open_store(db_url)
    job = store.get_job(1)
    assert job.status == "succeeded" and store.version_for_job(1) is not None
    assert (job.summary or {})["trials_at_once"]["trials"] == 2
    assert "Ctrl-C" in (job.summary or {})["stopped_early"]
    runs = store.list_runs(1)
    trials = [r for r in runs if r.kind == "trial"]
    assert 3 <= len(trials) < 500
    assert not [r for r in runs if r.status == "running" or r.error_code == "INTERNAL_ERROR"], runs
    assert not _study_running(db_url, 1)
    store.close()


def test_ctrl_c_twice_cancels_and_registers_nothing(url: str, tmp_path: Path) -> None:
    db_url = url
    run = Command(tmp_path, db_url, "run", str(_spec(tmp_path, trials=500, time_s=600)), env_extra=TWO_AT_ONCE)
    _until(lambda: _succeeded_trials(db_url) >= 2, 120, "two finished trials")
    run.signal_group(signal.SIGINT)
    _until(lambda: "press Ctrl-C again" in run.output, 30, "the first press to be acknowledged")
    run.signal_group(signal.SIGINT)
    assert run.wait() == 130, run.output
    assert "cancelled" in run.output

    store = open_store(db_url)
    job = store.get_job(1)
    assert (job.status, job.error_code) == ("cancelled", "CANCELLED")
    assert store.version_for_job(1) is None
    runs = store.list_runs(1)
    assert not [r for r in runs if r.status == "running" or r.error_code == "INTERNAL_ERROR"], runs
    assert not _study_running(db_url, 1)
    store.close()


@pytest.mark.parametrize("status", ["succeeded", "running"])
def test_resume_refuses_an_ended_job_or_a_live_one_with_a_named_error(
    sqlite_url: str, tmp_path: Path, status: str
) -> None:
    from automl.artifacts import ArtifactStore
    from automl.errors import JobNotResumable
    from automl.pipeline import resume_job, submit_job
    from automl.spec import load_spec_file

    store = open_store(sqlite_url, auto_upgrade=True)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    job = submit_job(store, artifacts, load_spec_file(_spec(tmp_path, trials=2, time_s=60)))
    store.claim_job(job.id)
    store.heartbeat_job(job.id)  # a live process stamped it just now
    if status == "succeeded":
        store.finish_job(job.id, "succeeded")
    with pytest.raises(JobNotResumable) as caught:
        resume_job(store, artifacts, job.id, sqlite_url, lease_s=60.0)
    assert ("already ended" if status == "succeeded" else "still running") in str(caught.value)
    assert caught.value.hint
    assert store.get_job(job.id).status == status  # nothing changed
    store.close()


def test_ctrl_c_that_a_database_call_turns_into_another_error_still_cancels(sqlite_url: str, tmp_path: Path) -> None:
    """A second press landing inside a database call came out of Optuna's storage as a
    ``StorageInternalError`` (the driver's clean-up failed on the interrupted connection), and the
    job ended ``failed`` with exit status 1 instead of ``cancelled`` with 130."""
    from automl.artifacts import ArtifactStore
    from automl.errors import interrupted
    from automl.pipeline import _ends_job, submit_job
    from automl.spec import load_spec_file

    store = open_store(sqlite_url)
    arts = ArtifactStore(tmp_path / "art")

    def job_id() -> int:
        return submit_job(store, arts, load_spec_file(_spec(tmp_path, trials=5, time_s=60))).id

    def wrapped() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            try:
                raise ValueError("can't change 'autocommit' now") from None  # the driver's clean-up
            except ValueError as cleanup:
                raise RuntimeError("An exception is raised during the commit.") from cleanup

    pressed = job_id()
    with pytest.raises(KeyboardInterrupt), _ends_job(store, pressed, sqlite_url):
        wrapped()
    job = store.get_job(pressed)
    assert (job.status, job.error_code) == ("cancelled", "CANCELLED")

    # Any other error still fails the job, and is raised as it is.
    broken = job_id()
    with pytest.raises(RuntimeError), _ends_job(store, broken, sqlite_url):
        raise RuntimeError("a bug")
    assert store.get_job(broken).error_code == "INTERNAL_ERROR"
    assert not interrupted(RuntimeError("a bug")) and interrupted(KeyboardInterrupt())
