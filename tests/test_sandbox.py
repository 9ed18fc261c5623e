"""The child-process sandbox: results, errors, crashes and hard deadlines."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from automl.sandbox import Channel, ChildCrashed, ChildError, ChildTimeout, run_in_child


def _echo(channel: Channel, value: Any) -> Any:
    return {"value": value, "pid": os.getpid()}


def _raise(channel: Channel) -> None:
    raise ValueError("bad parameter combination")


def _sleep(channel: Channel, seconds: float) -> str:
    time.sleep(seconds)
    return "finished"


def _die(channel: Channel) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _conversation(channel: Channel, n: int) -> list[Any]:
    return [channel.ask(i) for i in range(n)]


def test_result_comes_back_from_another_process() -> None:
    out = run_in_child(_echo, (41,), time.monotonic() + 30)
    assert out["value"] == 41
    assert out["pid"] != os.getpid()


def test_error_is_reported_with_its_type_and_traceback() -> None:
    with pytest.raises(ChildError) as info:
        run_in_child(_raise, (), time.monotonic() + 30)
    assert info.value.kind == "ValueError"
    assert "bad parameter combination" in info.value.message
    assert "_raise" in info.value.trace


def test_work_past_its_deadline_is_killed_not_waited_for() -> None:
    start = time.monotonic()
    with pytest.raises(ChildTimeout):
        run_in_child(_sleep, (30.0,), time.monotonic() + 1.0)
    assert time.monotonic() - start < 5.0


def test_a_killed_child_is_detected() -> None:
    with pytest.raises(ChildCrashed, match="SIGKILL"):
        run_in_child(_die, (), time.monotonic() + 30)


def test_child_and_parent_converse() -> None:
    seen: list[Any] = []

    def reply(message: Any) -> Any:
        seen.append(message)
        return message * 10

    assert run_in_child(_conversation, (3,), time.monotonic() + 30, reply) == [0, 10, 20]
    assert seen == [0, 1, 2]


def test_a_finished_child_is_not_left_defunct_once_the_work_ends() -> None:
    from automl.sandbox import reap_finished

    out = run_in_child(_echo, ("last",), time.monotonic() + 30)
    pid = out["pid"]
    reap_finished()  # what a worker's task does when it ends
    with pytest.raises(ChildProcessError):  # reaped: no such child (a zombie would still be waitable)
        os.waitpid(pid, os.WNOHANG)


def test_a_long_trial_is_heartbeated_while_short_ones_end_beside_it(tmp_path: Any) -> None:
    """Two trials at once: the parent returns to its loop each time a short one ends, and the long
    one's run must still be stamped every few seconds (else a lease would take it for lost)."""
    from automl.artifacts import ArtifactStore
    from automl.pipeline import submit_job
    from automl.sandbox import TICK_S, spawn
    from automl.spec import load_spec_file
    from automl.store import open_store
    from automl.tuning import _Asked, _collect, _Launched
    from tests.engine_helpers import write_spec

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    spec = write_spec(tmp_path, "penguins.csv", dataset={"target": "species"}, task="classification")
    job = submit_job(store, ArtifactStore(tmp_path / "art"), load_spec_file(spec))

    def launch(seconds: float, number: int) -> _Launched:
        run = store.start_run(job.id, "trial", "linear", {}, trial_number=number)
        asked = _Asked(trial=None, family="linear", params={})  # type: ignore[arg-type]
        return _Launched(asked, run.id, spawn(_sleep, (seconds,)), deadline=time.monotonic() + 60)

    long_run = launch(TICK_S + 3.0, 0)
    running, number = [long_run, launch(0.4, 1)], 1
    while long_run in running:
        for outcome in _collect(running, None, store, job.id, None):  # type: ignore[arg-type]
            assert outcome.error is None and outcome.out == "finished"
        if long_run in running:
            number += 1
            running.append(launch(0.4, number))
    for launched in running:
        launched.child.kill()
    assert number > 2 * TICK_S  # short trials kept ending all along
    stamped = next(r for r in store.list_runs(job.id) if r.id == long_run.run_id)
    assert stamped.heartbeat_at is not None
    assert (stamped.heartbeat_at - stamped.started_at).total_seconds() >= TICK_S - 0.5
