"""Benchmark: `automl monitor` over 100,000 logged predictions.

Trains a titanic version into a temporary SQLite store (or the PostgreSQL URL given), writes
``--rows`` rows to its prediction log (titanic rows drawn with replacement, half of them with the
ages shifted by 15 years, with the version's real answers), then times ``monitor_logged`` (read the
log, drift per feature and of the predictions, anomalies, outlier model, store the run) and the
whole `automl monitor --since 1h` command. Prints a Markdown section.

    python bench/monitor_bench.py [--rows 100000] [--database-url URL] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUTOML = str(Path(sys.executable).with_name("automl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import pandas as pd

    from automl.artifacts import ArtifactStore
    from automl.monitoring.log import Entry, entry_rows
    from automl.monitoring.monitor import monitor_logged
    from automl.pipeline import run_job, submit_job
    from automl.predict import load_version, predict_frame, records_frame
    from automl.spec import load_spec_file
    from automl.store import open_store

    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite:///{folder / 'store.db'}"
        spec = {
            "spec_version": 1, "name": "titanic-monitor-bench", "seed": 0,
            "dataset": {"path": str(REPO / "jobspecs/data/titanic.csv"), "target": "survived", "drop": ["alive"]},
            "task": "classification", "budget": {"time_s": None, "trials": 4},
            "candidates": {"include": ["hist_gradient_boosting"]}, "register": {"model_name": "titanic"},
        }  # fmt: skip
        (folder / "spec.json").write_text(json.dumps(spec))
        store, arts = open_store(url, auto_upgrade=True), ArtifactStore(folder / "artifacts")
        job = run_job(store, arts, submit_job(store, arts, load_spec_file(folder / "spec.json")).id, url)
        version = store.version_for_job(job.id)
        assert version is not None

        frame = pd.read_csv(REPO / "jobspecs/data/titanic.csv").drop(columns=["survived", "alive"])
        rows = frame.sample(n=args.rows, replace=True, random_state=0).reset_index(drop=True)
        rows.loc[: args.rows // 2, "age"] += 15
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        out = predict_frame(load_version(arts, version), records_frame(records, version.input_schema), "binary", True)
        started = time.perf_counter()
        entry = Entry(
            version, records, out["predictions"], out["probabilities"], [f"r{i}" for i in range(len(records))],
            5.0, "serve", datetime.now(UTC),
        )  # fmt: skip
        logged = entry_rows(entry, 1.0, random.Random(0))
        for start in range(0, len(logged), 10_000):
            store.add_prediction_logs(logged[start : start + 10_000])
        write_s = time.perf_counter() - started

        library = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = monitor_logged(store, arts, version, timedelta(hours=1), actor="bench", max_rows=args.rows)
            library.append(time.perf_counter() - t0)
        env = {**os.environ, "AUTOML_DATABASE_URL": url, "AUTOML_ARTIFACT_ROOT": str(folder / "artifacts")}
        command = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            done = subprocess.run(
                [AUTOML, "monitor", "titanic", "--since", "1h", "--max-rows", str(args.rows), "--format", "json"],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            command.append(time.perf_counter() - t0)
        answer = json.loads(done.stdout)
        store.close()

    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print("## Monitoring: `automl monitor --since` over the prediction log (`bench/monitor_bench.py`)")
    print()
    print(
        f"{args.rows:,} logged rows of titanic v1 ({len(version.input_schema)} input columns, half of them with ages "
        f"shifted by 15 years), {backend} store, {platform.machine()} with {os.cpu_count()} cores; best of "
        f"{args.repeat}."
    )
    print()
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| writing the rows (batches of 10,000) | {write_s:.1f} |")
    print(f"| `monitor_logged` (read, drift, anomalies, outliers, store the run) | {min(library):.1f} |")
    print(f"| `automl monitor titanic --since 1h` (whole command) | {min(command):.1f} |")
    print()
    drifted = [f["name"] for f in answer["features"] if f["drifted"]]
    print(
        f"Result: {answer['drifted_features']} of {len(answer['features'])} features drifted ({', '.join(drifted)}); "
        f"{answer['anomalies']['rows']:,} anomalous rows; the run took {result.seconds:.1f} s inside the library."
    )


if __name__ == "__main__":
    main()
