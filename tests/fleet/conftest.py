"""Fleet fixtures: real PostgreSQL, real Redis, real `automl worker` processes.

Outside CI a missing service skips these tests; with CI=true it fails them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

AUTOML = str(Path(sys.executable).with_name("automl"))
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
PG_STOP = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main stop -m fast"


def _require(problem: str | None, what: str) -> None:
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{what} is required in CI and is unreachable: {problem}")
        pytest.skip(f"{what} unreachable: {problem}")


@pytest.fixture(scope="session")
def redis_server() -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3).ping()
        problem = None
    except Exception as exc:
        problem = str(exc)
    _require(problem, "Redis")


@pytest.fixture
def redis_db(redis_server: None) -> Iterator[int]:
    """A Redis database number of its own, empty before and after the test."""
    import redis

    number = 1 + uuid.uuid4().int % 14
    client = redis.Redis(host="127.0.0.1", port=6379, db=number)
    client.flushdb()
    yield number
    with contextlib.suppress(Exception):
        client.flushdb()


class Fleet:
    """The environment of one fleet and its worker processes."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.workers: list[subprocess.Popen[str]] = []

    def automl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AUTOML, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def start_worker(self, concurrency: int = 1) -> subprocess.Popen[str]:
        log = open(self.tmp_path / f"worker-{len(self.workers)}.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [AUTOML, "worker", "--concurrency", str(concurrency), "--loglevel", "INFO"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: kill -9 takes its pool and fit children too
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[str]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def submit(self, spec: Path, *args: str) -> int:
        result = self.automl("submit", str(spec), *args)
        assert result.returncode == 0, result.stdout + result.stderr
        match = re.search(r"queued job (\d+)", result.stdout)
        assert match, result.stdout
        return int(match.group(1))

    def store(self) -> Any:
        from automl.store import open_store

        return open_store(self.env["AUTOML_DATABASE_URL"])

    def wait(self, job_id: int, predicate: Callable[[Any], bool], timeout: float, what: str) -> Any:
        store = self.store()
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                job = store.get_job(job_id)
                if predicate(job):
                    return job
                time.sleep(0.5)
            raise AssertionError(f"job {job_id}: timed out waiting for {what}; last status {job.status}\n{self.logs()}")
        finally:
            store.close()

    def wait_done(self, job_id: int, timeout: float = 180) -> Any:
        return self.wait(job_id, lambda j: j.done, timeout, "the job to end")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.tmp_path.glob("worker-*.log")))

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(15)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


@pytest.fixture
def fleet(pg_url: str, redis_db: int, tmp_path: Path) -> Iterator[Fleet]:
    env = {
        **os.environ,
        "AUTOML_DATABASE_URL": pg_url,
        "AUTOML_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AUTOML_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "AUTOML_TRIAL_LEASE_S": "12",
        "COLUMNS": "200",
    }
    f = Fleet(env, tmp_path)
    upgraded = f.automl("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    yield f
    f.stop()
