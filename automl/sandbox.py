"""Run one piece of model work in a forked child process with a hard deadline.

A fit that would run past the budget is stopped, not waited for: the parent polls the child's
pipe until the deadline and then kills it. The child can talk to the parent while it works
(``channel.ask(message)``): the tuner uses this to report each fold's score and hear back whether
the trial is pruned. A child that raises reports the error; a child that dies (out of memory,
killed) is detected from its exit code. Either way the parent goes on.

The parent never runs OpenMP-threaded model code itself, so forking is safe: every fit and every
prediction happens in a child.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

TICK_S = 5.0  # how often a waiting parent calls on_tick (the run's heartbeat)
STOP = "stop"  # what on_tick returns to have the child killed (ChildStopped)


class ChildTimeout(Exception):
    """The work did not finish before its deadline and was killed."""


class ChildCrashed(Exception):
    """The child process died without reporting (killed, out of memory, segfault)."""


class ChildStopped(Exception):
    """``on_tick`` asked for the work to stop (the job was cancelled); the child was killed."""


class ChildError(Exception):
    """The work raised; ``kind`` is the exception class name, ``trace`` its traceback."""

    def __init__(self, kind: str, message: str, trace: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.trace = trace


class Channel:
    """The child's end of the pipe."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def ask(self, message: Any) -> Any:
        """Send ``message`` to the parent and wait for its reply."""
        self._conn.send(("ask", message))
        return self._conn.recv()


def _child_main(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    # The parent may hold database connections: they were inherited, never touch them here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Nothing inherited is collected here: a finalizer of the parent's objects (a TensorFlow
    # function of a process that imported it, a driver's connection) must not run in a fork of it.
    # It also keeps the inherited pages shared instead of copied on write.
    gc.freeze()
    try:
        result = fn(Channel(conn), *args)
        conn.send(("result", result))
    except BaseException as exc:  # report everything, including MemoryError
        conn.send(("error", (type(exc).__name__, str(exc)[:2000], traceback.format_exc()[-8000:])))
    finally:
        conn.close()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit code (negative: killed by that signal), or None if still running."""
    end = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= end:
            return None
        time.sleep(0.002)


_exiting: set[int] = set()  # children that sent their result and are exiting: reaped later


def reap_finished(timeout_s: float = 5.0) -> None:
    """Wait (at most ``timeout_s`` each) for the children that sent their result and were exiting:
    a long-lived process (a fleet worker) calls this when its work ends, so no finished child stays
    behind as a defunct process until the next piece of work. With 0, reap those already gone
    (done before and after each child, without waiting)."""
    for pid in list(_exiting):
        try:
            if _wait(pid, timeout_s) is None:
                continue  # still exiting: left for the next call
        except ChildProcessError:
            pass  # reaped elsewhere
        _exiting.discard(pid)


class Child:
    """A forked child running one piece of work; :meth:`wait` serves its messages until it ends, or
    a caller watching several children (:func:`ready`) serves each with :meth:`serve`."""

    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid = pid
        self._conn = conn
        self._open = True
        self._ended = False  # sent its result or error, or died: nothing to kill

    def serve(self, on_message: Callable[[Any], Any] | None = None) -> tuple[bool, Any]:
        """Read one message from the child (call when :func:`ready` says it has one). A question is
        answered with ``on_message`` and gives ``(False, None)``; the result gives ``(True, result)``.
        Raises ChildError when the work raised and ChildCrashed when the child died without a word."""
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            exitcode = _wait(self.pid, 5.0)
            self._ended = exitcode is not None  # else still there: killed by the caller
            if exitcode is not None and exitcode < 0:
                hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
                raise ChildCrashed(f"the fit process was killed by {_signal_name(exitcode)}{hint}") from None
            raise ChildCrashed(f"the fit process exited with code {exitcode} without a result") from None
        if kind == "ask":
            self._conn.send(on_message(payload) if on_message else None)
            return False, None
        self._ended = True
        _exiting.add(self.pid)  # it exits right after sending: no need to wait for that
        if kind == "result":
            return True, payload
        raise ChildError(*payload)

    def wait(
        self,
        deadline: float,
        on_message: Callable[[Any], Any] | None = None,
        on_tick: Callable[[], Any] | None = None,
    ) -> Any:
        """Return the child's result or raise ChildTimeout, ChildCrashed, ChildError or ChildStopped.
        The child is gone (or exiting with its result sent) when this returns or raises."""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self.timed_out()
                if not self._conn.poll(min(remaining, TICK_S)):
                    if on_tick is not None and on_tick() == STOP:
                        raise self.stopped()
                    continue
                done, result = self.serve(on_message)
                if done:
                    return result
        finally:
            self.close()

    def timed_out(self) -> ChildTimeout:
        """The error of this child killed at its deadline."""
        return ChildTimeout(f"stopped at its deadline after running past the budget (pid {self.pid})")

    def stopped(self) -> ChildStopped:
        """The error of this child killed on request."""
        return ChildStopped(f"stopped on request (pid {self.pid})")

    def close(self) -> None:
        """Done with the child: kill it unless it has ended, and reap the children that have exited."""
        self._close()
        if not self._ended:
            self.kill()
        reap_finished(0.0)

    def kill(self) -> None:
        """Stop the child now (it may be mid-fit) and reap it."""
        self._close()
        reaped = self._ended and self.pid not in _exiting  # its process id may already be another's
        self._ended = True
        _exiting.discard(self.pid)
        if reaped:
            return
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            _wait(self.pid, 10.0)

    def _close(self) -> None:
        if self._open:
            self._open = False
            self._conn.close()


def ready(children: list[Child], timeout: float) -> list[Child]:
    """The children with a message waiting, after at most ``timeout`` seconds (none when it passes)."""
    from multiprocessing.connection import wait

    waiting = wait([child._conn for child in children], max(0.0, timeout))
    return [child for child in children if child._conn in waiting]


def spawn(fn: Callable[..., Any], args: tuple[Any, ...]) -> Child:
    """Fork a child that runs ``fn(channel, *args)``; :meth:`Child.wait` collects the outcome.

    The fork is a plain ``os.fork`` rather than ``multiprocessing.Process``: a Celery prefork
    worker's processes are daemonic, and multiprocessing refuses children to those.
    """
    reap_finished(0.0)
    parent_conn, child_conn = mp.Pipe(duplex=True)
    pid = os.fork()
    if pid == 0:  # the child: never return into the caller's stack
        code = 0
        try:
            parent_conn.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _child_main(child_conn, fn, args)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    child_conn.close()
    return Child(pid, parent_conn)


def run_in_child(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    deadline: float,
    on_message: Callable[[Any], Any] | None = None,
    on_tick: Callable[[], Any] | None = None,
) -> Any:
    """Run ``fn(channel, *args)`` in a forked child; return its result or raise.

    ``deadline`` is a ``time.monotonic()`` instant; ``on_tick`` is called every few seconds while the
    child works (to heartbeat). Raises ChildTimeout, ChildCrashed or ChildError.
    """
    return spawn(fn, args).wait(deadline, on_message, on_tick)


@contextlib.contextmanager
def openmp_single_threaded() -> Iterator[None]:
    """Run OpenMP code of this process on one thread while the block runs.

    For a process that forks trial children (the engine, a fleet worker) and loads or predicts with
    a model itself (finalizing, the promotion gate, monitoring): GNU libgomp's thread pool does not
    survive a fork, so once the parent has run a parallel region on two threads, the first
    parallel region of a child forked after it (LightGBM building its data set, XGBoost, scikit-
    learn's histogram boosting) waits forever. With one thread no pool is started. The libraries
    are imported first, so that their OpenMP runtimes are among those limited."""
    from threadpoolctl import threadpool_limits

    for module in ("lightgbm", "xgboost", "sklearn.ensemble"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    with threadpool_limits(limits=1, user_api="openmp"):
        yield
