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
