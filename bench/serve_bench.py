"""Benchmark: single-row prediction latency and throughput of a real ``automl serve``.

Trains a tree-ensemble version of titanic (random_forest + extra_trees, voting ensemble enabled)
into a temporary SQLite store, promotes it, starts ``automl serve`` in a subprocess, then measures
one-row ``POST /v1/models/titanic/predict`` requests: one client in sequence, then 8 concurrent
clients (separate processes, keep-alive connections), once per number of server processes given
(``--workers 1 2``) and per prediction-log sample rate (``--log-rates 0 1``: the log off, every row
logged). Prints a Markdown section.

    python bench/serve_bench.py [--requests 500] [--seconds 10] [--clients 8] [--trials 12] [--workers 1 2]
                                [--log-rates 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
AUTOML = str(Path(sys.executable).with_name("automl"))
ROW = {
    "pclass": 3, "sex": "male", "age": 22.0, "sibsp": 1, "parch": 0, "fare": 7.25, "embarked": "S",
    "class": "Third", "who": "man", "adult_male": True, "deck": None, "embark_town": "Southampton", "alone": False,
}  # fmt: skip


def train(folder: Path, trials: int, n_jobs: int) -> tuple[str, dict[str, Any]]:
    """A titanic ensemble version in production in a fresh SQLite store; its URL and what it is."""
    from automl import registry
    from automl.artifacts import ArtifactStore
    from automl.pipeline import run_job, submit_job
    from automl.spec import load_spec_file
    from automl.store import open_store

    spec = {
        "spec_version": 1,
        "name": "titanic-serve-bench",
        "dataset": {"path": str(REPO / "jobspecs/data/titanic.csv"), "target": "survived", "drop": ["alive"]},
        "task": "classification",
        "budget": {"time_s": None, "trials": trials},
        "candidates": {"include": ["random_forest", "extra_trees"]},
        "ensemble": {"enabled": True},
        "register": {"model_name": "titanic"},
        "n_jobs": n_jobs,
        "seed": 0,
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    url = f"sqlite:///{folder / 'store.db'}"
    store, arts = open_store(url), ArtifactStore(folder / "artifacts")
    job = run_job(store, arts, submit_job(store, arts, load_spec_file(path)).id, url)
    version = store.version_for_job(job.id)
    assert version is not None, job.error_message
    registry.promote(store, arts, "titanic", version.id, by="bench")
    summary = job.summary or {}
    members = (summary.get("ensemble") or {}).get("members") or []
    size = arts.path(version.artifact_uri).stat().st_size
    what = {
        "version_id": version.id,
        "final": summary.get("final"),
        "members": [f"{m['family']} (weight {m['weight']:.2f})" for m in members] if summary.get("final") == "ensemble"
        else [summary.get("best", {}).get("family")],
        "artifact_mb": round(size / 1e6, 1),
        "holdout": version.holdout_score,
        "metric": version.metric,
    }  # fmt: skip
    store.close()
    return url, what


def _client(base: str, requests: int | None, seconds: float | None, start_at: float) -> tuple[list[float], float]:
    """Send one-row predictions (a number of them, or for a while); latencies in ms and the wall time."""
    import httpx2

    body = {"records": [ROW]}
    with httpx2.Client(base_url=base, timeout=30) as client:
        client.post("/v1/models/titanic/predict", json=body).raise_for_status()  # connect and warm up
        while time.time() < start_at:
            time.sleep(0.001)
        latencies: list[float] = []
        began = time.perf_counter()
        while (requests is None or len(latencies) < requests) and (
            seconds is None or time.perf_counter() - began < seconds
        ):
            sent = time.perf_counter()
            client.post("/v1/models/titanic/predict", json=body).raise_for_status()
            latencies.append((time.perf_counter() - sent) * 1000)
        return latencies, time.perf_counter() - began


def _summary(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "rps": len(ordered) / wall,
    }


def measure(base: str, requests: int, seconds: float, clients: int) -> dict[str, dict[str, float]]:
    single, wall = _client(base, requests, None, 0.0)
    results = {"1 client": _summary(single, wall)}
    start_at = time.time() + 3.0  # every client process connected and warm before the clock starts
    with ProcessPoolExecutor(clients) as pool:
        futures = [pool.submit(_client, base, None, seconds, start_at) for _ in range(clients)]
        outs = [f.result() for f in futures]
    results[f"{clients} clients"] = _summary([x for lat, _ in outs for x in lat], max(w for _, w in outs))
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, folder: Path, workers: int, log_rate: float = 1.0) -> tuple[subprocess.Popen[bytes], str]:
    import httpx2

    port = _free_port()
    env = {
        **os.environ,
        "AUTOML_DATABASE_URL": url,
        "AUTOML_ARTIFACT_ROOT": str(folder / "artifacts"),
        "AUTOML_LOG_SAMPLE_RATE": str(log_rate),
    }
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [AUTOML, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"automl serve exited:\n{(folder / 'server.log').read_text()}")
        try:
            if httpx2.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx2.TransportError:
            time.sleep(0.2)
    raise SystemExit("automl serve did not start in 120 s")


def markdown(what: dict[str, Any], results: dict[str, dict[str, float]], trials: int) -> str:
    cpu = os.cpu_count()
    lines = [
        "## Serving: single-row predictions (`bench/serve_bench.py`)",
        "",
        f"Model: titanic v1 (version id {what['version_id']}), {what['final']} of "
        f"{', '.join(str(m) for m in what['members'])}; {trials} trials; artifact {what['artifact_mb']} MB; "
        f"holdout {what['metric']} {what['holdout']:.3f}.",
        f"Server: `automl serve --workers N` (uvicorn) on {platform.machine()} with {cpu} cores, SQLite store; "
        "clients are separate processes on the same machine, one keep-alive connection each.",
        "",
        "| workers | prediction log | clients | requests | p50 (ms) | p99 (ms) | requests/s |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {int(r['requests'])} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests sent by the single client")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the concurrent clients run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--n-jobs", type=int, default=-1, help="the job spec's n_jobs (-1 is the spec default)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server processes, one run each")
    parser.add_argument(
        "--log-rates", type=float, nargs="+", default=[1.0], help="AUTOML_LOG_SAMPLE_RATE values, one run each"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        folder = Path(tmp)
        print("training the ensemble ...", file=sys.stderr)
        url, what = train(folder, args.trials, args.n_jobs)
        results: dict[str, dict[str, float]] = {}
        for workers in args.workers:
            for rate in args.log_rates:
                server, base = serve(url, folder, workers, rate)
                try:
                    logged = "off" if rate == 0 else f"{rate:.0%} of rows"
                    for clients, r in measure(base, args.requests, args.seconds, args.clients).items():
                        results[f"{workers} | {logged} | {clients}"] = r
                finally:
                    server.terminate()
                    server.wait(timeout=30)
        rows = _logged_rows(url)
    print(markdown(what, results, args.trials))
    print(f"\nRows in the prediction log after the runs: {rows:,}.")


def _logged_rows(url: str) -> int:
    from automl.store import open_store

    store = open_store(url)
    try:
        return len(store.list_prediction_logs("titanic"))
    finally:
        store.close()


if __name__ == "__main__":
    main()
