"""Benchmark: the automl engine vs a HistGradientBoosting baseline vs FLAML vs AutoGluon, at the same budget.

For every data set in ../shared/datasets/manifest.json: the same 80/20 holdout (seed 0, stratified
for classes, made by the engine's own ``prepare_data``), the task's default metric computed by the
engine's own scorer, a 60 s budget for the engine, FLAML and AutoGluon. Each system runs in a
subprocess of its own so its peak RSS (process and children) is measured apart. The engine and the
baseline run in this (the engine's) environment; FLAML and AutoGluon run ``bench/peers.py`` in a
virtual environment of their own, ``bench/.venv-peers``, since they pin their own xgboost,
scikit-learn and numpy. Writes bench/RESULTS.md, bench/out/results.json and each system's holdout
prediction (bench/out/predictions/), from which the summary's paired bootstrap intervals come.

    python bench/run_bench.py --setup-peers      # once: creates bench/.venv-peers (about 2 GB)
    python bench/run_bench.py [--budget 60] [--only titanic,wine] [--systems automl,flaml]
    python bench/run_bench.py --with-large       # adds diamonds_x10 (540k rows) to the default set
    python bench/run_bench.py --datasets DIR     # the data sets of DIR/manifest.json instead
    python bench/run_bench.py --keep DIR         # keep each engine job's store under DIR/NAME/
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypeGuard

REPO = Path(__file__).resolve().parents[1]
# Any folder holding CSVs and a manifest.json in the shared one's format (name, file, target, task,
# drop) can stand in: `--datasets DIR`, which the per-system subprocesses read from the environment.
SHARED = Path(os.environ.get("AUTOML_BENCH_DATASETS") or REPO.parent / "shared" / "datasets")
OUT = REPO / "bench" / "out"
PREDICTIONS = OUT / "predictions"  # each system's holdout prediction, NAME.SYSTEM.npy, and NAME.y.npy
BOOTSTRAP_DRAWS = 2000  # resamples of the holdout rows for the interval of a difference in score
SYSTEMS = ("automl", "baseline", "flaml", "autogluon")
PEERS = ("flaml", "autogluon")
LABELS = {"automl": "automl", "baseline": "baseline", "flaml": "FLAML", "autogluon": "AutoGluon"}
PEER_VENV = REPO / "bench" / ".venv-peers"
# No `[all]` for AutoGluon: that pulls torch (CUDA builds); catboost is its strongest GBM family.
# lightgbm and xgboost come with flaml[automl] (AutoGluon's xgboost extra would add xgboost-cpu,
# a second distribution of the same module).
PEER_PACKAGES = ("flaml[automl]", "autogluon.tabular[catboost]")
# Generated on first use into bench/out/, never committed, only run when asked for.
LARGE = [
    {"name": "diamonds_x10", "file": "diamonds.csv", "copies": 10, "target": "price", "task": "regression",
     "drop": []},
]  # fmt: skip


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def _entries() -> list[dict[str, Any]]:
    manifest: list[dict[str, Any]] = json.loads((SHARED / "manifest.json").read_text())
    return manifest + [dict(e, large=True) for e in LARGE]


def _dataset_path(entry: dict[str, Any]) -> Path:
    """The CSV of ``entry``; a case made of copies of a shared file is written on first use."""
    copies = entry.get("copies")
    if not copies:
        return SHARED / entry["file"]
    path = OUT / f"{entry['name']}.csv"
    if not path.exists():
        header, body = (SHARED / entry["file"]).read_text().split("\n", 1)
        body = body if body.endswith("\n") else body + "\n"
        OUT.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("w") as fh:
            fh.write(header + "\n")
            for _ in range(copies):
                fh.write(body)
        partial.replace(path)
    return path


def _job_data(entry: dict[str, Any]) -> Any:
    """The engine's own split and encoding, so every system sees the same rows."""
    import pandas as pd

    from automl.metrics import DEFAULT_METRIC
    from automl.preprocessing import plan_features
    from automl.profile import profile_frame, resolve_task, with_target
    from automl.training import prepare_data

    # The engine draws its holdout by a hash of each whole row of the file, dropped columns included
    # (its spec's `drop` only keeps them out of the features): hash the same rows here, then drop.
    frame = pd.read_csv(_dataset_path(entry))
    drop = list(entry.get("drop", []))
    target = entry["target"]
    task = resolve_task(frame[target], "regression" if entry["task"] == "regression" else "classification")
    profile = with_target(profile_frame(frame), frame, target, task)
    plan = plan_features(profile, target, drop, list(profile.leaks), None)
    data = prepare_data(
        frame, target=target, task=task, metric=DEFAULT_METRIC[task], plan=plan, profile=profile,
        holdout_fraction=0.2, folds=5, seed=0, n_jobs=-1,
    )  # fmt: skip
    return dataclasses.replace(data, X=data.X.drop(columns=drop), X_holdout=data.X_holdout.drop(columns=drop))


def run_automl(entry: dict[str, Any], budget: float) -> dict[str, Any]:
    from automl.artifacts import ArtifactStore
    from automl.pipeline import run_job, submit_job
    from automl.spec import parse_spec
    from automl.store import open_store

    task = "regression" if entry["task"] == "regression" else "classification"
    raw = {
        "spec_version": 1, "name": f"bench-{entry['name']}", "task": task, "seed": 0,
        "dataset": {"path": str(_dataset_path(entry)), "target": entry["target"], "drop": entry.get("drop", [])},
        "budget": {"time_s": budget}, "holdout_fraction": 0.2, "cv": {"folds": 5},
    }  # fmt: skip
    from datetime import UTC, datetime

    keep = os.environ.get("AUTOML_BENCH_KEEP")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = scratch
        if keep:  # `--keep DIR`: the job's store and artifacts stay for later study
            tmp = str(Path(keep) / entry["name"])
            Path(tmp).mkdir(parents=True, exist_ok=False)
        url = f"sqlite:///{tmp}/bench.db"
        store, arts = open_store(url), ArtifactStore(Path(tmp) / "art")
        # As `automl run` does: the budget counts from before the data is loaded and registered.
        clock, start = datetime.now(UTC), time.monotonic()
        loaded = parse_spec(raw, base_dir=Path(tmp))  # held while the job runs, as `automl run` holds it
        job = submit_job(store, arts, loaded)
        job = run_job(store, arts, job.id, url, clock_started=clock)
        wall = time.monotonic() - start
        del loaded
        peak = _peak_rss_mb()  # the job's, before the holdout is read again below
        summary = job.summary or {}
        trials = len([r for r in store.list_runs(job.id) if r.kind == "trial"])
        validation = summary.get("validation")  # {"scheme", "reason"}; absent on engines without it
        result = {
            "score": summary["holdout_score"], "metric": job.metric, "wall_s": wall, "trials": trials,
            "final": summary["final"], "best_family": summary["best"]["family"],
            "model_family": (summary.get("model") or {}).get("family"),
            "validation": validation if isinstance(validation, dict) else None,
            "trials_at_once": (summary.get("trials_at_once") or {}).get("trials"), "peak_rss_mb": peak,
        }  # fmt: skip
        result.update(_engine_prediction(store, arts, entry, summary))
        return result


def _engine_prediction(store: Any, arts: Any, entry: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The holdout prediction of the fit that the engine's holdout score came from (the version's
    evaluation model, which never saw those rows), for the paired intervals of the summary. It
    must reproduce the engine's own score, or the rows are not the same and nothing is kept."""
    from automl.context import load_evaluation_model
    from automl.training import _saved_prediction  # a saved model answers in labels: as codes here

    version = summary.get("version") or {}
    if "id" not in version:
        return {}
    try:
        data = _job_data(entry)
        model = load_evaluation_model(store, arts, int(version["id"]))
        prediction = _saved_prediction(model, data, data.X_holdout)
    except Exception as exc:  # the engine's result stands without it
        return {"prediction_note": f"no holdout prediction: {type(exc).__name__}: {exc}"}
    again = float(data.metric.score(data.y_holdout, prediction))
    if abs(again - float(summary["holdout_score"])) > 1e-6 * max(1.0, abs(again)):
        return {"prediction_note": f"the evaluation model scores {again:.6g} here, not {summary['holdout_score']:.6g}"}
    return {"prediction": prediction, "y_holdout": data.y_holdout}


def run_baseline(entry: dict[str, Any], budget: float) -> dict[str, Any]:
    from automl.candidates import build_estimator
    from automl.model import predict_matrix

    data = _job_data(entry)
    start = time.monotonic()
    model = build_estimator("hist_gradient_boosting", {}, data.task, 0, -1, data.plan, data.profile)
    model.fit(data.X, data.y)
    prediction = predict_matrix(model, data.X_holdout, data.task, data.n_classes)
    wall = time.monotonic() - start
    score = data.metric.score(data.y_holdout, prediction)
    return {"score": score, "metric": data.metric_name, "wall_s": wall, "trials": 1, "prediction": prediction,
            "y_holdout": data.y_holdout}  # fmt: skip


def _write_parquet(frame: Any, path: Path) -> None:
    """Without pandas' schema metadata, so the peers' older pandas reads plain strings and numbers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None), path)


def run_peer(entry: dict[str, Any], budget: float, system: str) -> dict[str, Any]:
    """Hand the engine's split to ``bench/peers.py`` in the peer venv, then score its prediction
    with the engine's metric. Wall seconds, trials and peak RSS are the peer process's own."""
    import numpy as np

    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{PEER_VENV} is missing: run `python bench/run_bench.py --setup-peers` (or `make bench`)")
    data = _job_data(entry)
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as tmp:
        workdir = Path(tmp)
        label = entry["target"]  # not among the features: prepare_data dropped it from them
        train = data.X.copy()
        train[label] = data.y
        _write_parquet(train, workdir / "train.parquet")
        _write_parquet(data.X_holdout, workdir / "holdout.parquet")
        meta = {
            "task": data.task, "metric": data.metric_name, "label": label, "n_classes": data.n_classes,
            "budget": budget, "seed": data.seed,
        }  # fmt: skip
        (workdir / "meta.json").write_text(json.dumps(meta))
        cmd = [str(python), str(REPO / "bench" / "peers.py"), system, str(workdir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget * 4 + 240)
        if proc.returncode != 0 or not (workdir / "result.json").exists():
            raise RuntimeError(f"{system} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-600:]}")
        result = json.loads((workdir / "result.json").read_text())
        prediction = np.load(workdir / "prediction.npy")
    result["score"] = data.metric.score(data.y_holdout, prediction)
    result["metric"] = data.metric_name
    result["prediction"], result["y_holdout"] = prediction, data.y_holdout
    return result


def setup_peers() -> None:
    """Create and fill bench/.venv-peers unless it is complete already (its stamp file exists)."""
    stamp = PEER_VENV / ".installed"
    if stamp.exists():
        print(f"{PEER_VENV} is ready")
        return
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    stamp.touch()
    print(f"{PEER_VENV} installed in {time.monotonic() - start:.0f} s")


def one(name: str, system: str, budget: float) -> None:
    entry = next(e for e in _entries() if e["name"] == name)
    if system in PEERS:
        result = run_peer(entry, budget, system)
    else:
        result = {"automl": run_automl, "baseline": run_baseline}[system](entry, budget)
    result.setdefault("peak_rss_mb", _peak_rss_mb())  # a peer reports its own process's
    _keep_prediction(name, system, result)
    print("RESULT " + json.dumps(result))


def _keep_prediction(name: str, system: str, result: dict[str, Any]) -> None:
    """Move the holdout prediction (and the holdout's labels) out of ``result`` into PREDICTIONS,
    leaving the prediction's path in ``result["prediction_file"]``."""
    import numpy as np

    prediction, y = result.pop("prediction", None), result.pop("y_holdout", None)
    if prediction is None or y is None:
        return
    PREDICTIONS.mkdir(parents=True, exist_ok=True)
    path = PREDICTIONS / f"{name}.{system}.npy"
    np.save(path, np.asarray(prediction))
    np.save(PREDICTIONS / f"{name}.y.npy", np.asarray(y))
    result["prediction_file"] = str(path)


def difference_interval(
    metric: str, y: Any, a: Any, b: Any, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> tuple[float, float]:
    """The 95 % paired bootstrap interval of how much better prediction ``a`` scores than ``b`` on
    the same holdout rows (positive: ``a`` is better, in the metric's units). Both are scored on
    each resample of the rows, so what the two get right and wrong together cancels out; where the
    interval holds 0, the holdout cannot tell the two apart. A resample one metric cannot score (one
    class only, for ROC AUC) is skipped."""
    import numpy as np

    from automl.metrics import get_metric

    scorer = get_metric(metric)
    sign = 1.0 if scorer.greater_is_better else -1.0
    y, a, b = np.asarray(y), np.asarray(a), np.asarray(b)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(draws):
        rows = rng.integers(0, len(y), len(y))
        with np.errstate(all="ignore"):
            try:
                d = sign * (scorer.score(y[rows], a[rows]) - scorer.score(y[rows], b[rows]))
            except ValueError:
                continue
        if np.isfinite(d):
            differences.append(d)
    if not differences:
        return (float("nan"), float("nan"))
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def _interval(name: str, metric: str, a: dict[str, Any] | None, b: dict[str, Any] | None) -> tuple[float, float] | None:
    """:func:`difference_interval` of systems ``a`` over ``b`` on data set ``name``, from their kept
    predictions; None when either has none."""
    import numpy as np

    files = [x.get("prediction_file") if _ok(x) else None for x in (a, b)]
    y_file = PREDICTIONS / f"{name}.y.npy"
    if not all(files) or not y_file.exists() or not all(Path(f).exists() for f in files):  # type: ignore[arg-type]
        return None
    pa, pb = (np.load(f) for f in files)  # type: ignore[arg-type]
    return difference_interval(metric, np.load(y_file), pa, pb)


def _known(interval: tuple[float, float] | None) -> TypeGuard[tuple[float, float]]:
    """Whether there is an interval and both its bounds are finite."""
    return interval is not None and all(math.isfinite(x) for x in interval)


def _decided(interval: tuple[float, float] | None) -> int:
    """1 or -1 where the interval lies above or below 0; 0 where it holds 0 (or is unknown)."""
    if not _known(interval):
        return 0
    low, high = interval
    return 1 if low > 0 else -1 if high < 0 else 0


def _greater_is_better(metric: str) -> bool:
    from automl.metrics import get_metric

    return get_metric(metric).greater_is_better


def _better(metric: str, a: float, b: float) -> int:
    tolerance = 1e-3 * max(abs(a), abs(b), 1e-12)
    if abs(a - b) <= tolerance:
        return 0
    return 1 if (a > b) == _greater_is_better(metric) else -1


def _within(metric: str, a: float, b: float, relative: float = 0.01) -> bool:
    """Whether ``a`` is better than ``b`` or worse by at most ``relative`` of ``b``."""
    slack = relative * abs(b)
    return a >= b - slack if _greater_is_better(metric) else a <= b + slack


def _ok(x: dict[str, Any] | None) -> bool:
    return bool(x) and "error" not in (x or {})


def _best_peer(metric: str, row: dict[str, Any]) -> str | None:
    """The peer with the better score on this data set (FLAML on an exact tie), if any scored."""
    scored = [s for s in PEERS if _ok(row.get(s))]
    sign = 1.0 if _greater_is_better(metric) else -1.0
    return max(scored, key=lambda s: sign * row[s]["score"]) if scored else None


def _cell(x: dict[str, Any] | None, key: str, spec: str) -> str:
    if x is None:
        return "—"  # not run
    if "error" in x:
        return "error"
    value = x.get(key)
    return "—" if value is None else format(value, spec)


def _show(interval: tuple[float, float] | None) -> str:
    if not _known(interval):
        return "—"
    return f"{interval[0]:+.4g} to {interval[1]:+.4g}"


def _versions(results: list[dict[str, Any]]) -> str:
    found = {}
    for system in PEERS:
        for r in results:
            if _ok(r.get(system)) and r[system].get("version"):
                found[system] = f"{LABELS[system]} {r[system]['version']}"
                break
    return ", ".join(found.values())


def write_results(results: list[dict[str, Any]], budget: float, path: Path = REPO / "bench" / "RESULTS.md") -> None:
    versions = _versions(results)
    lines = [
        "# Benchmark results",
        "",
        f"Engine (`automl run`, {budget:.0f} s budget, 5-fold CV, ensemble on) vs a baseline "
        "(HistGradientBoosting defaults with the engine's preprocessing) vs FLAML "
        f"(`time_budget={budget:.0f}`, 5-fold CV) vs AutoGluon (`presets='medium_quality'`, "
        f"`time_limit={budget:.0f}`), on the same 80/20 holdout of seed 0 (the engine's own split), "
        "scored by the engine's metric for each task's default (binary ROC AUC, multiclass log loss, "
        "regression RMSE). FLAML and AutoGluon run in a virtual environment of their own"
        + (f" ({versions})" if versions else "")
        + ". Wall seconds cover fit and holdout prediction; AutoGluon's trials are the models it "
        "trained. 2 cores, 24 GiB. Produced by `make bench` (`bench/run_bench.py`).",
        "",
        "| data set | metric | automl | baseline | FLAML | AutoGluon | vs best peer | automl − best peer, 95 % "
        "interval | automl − baseline, 95 % interval | wall s (automl / baseline / FLAML / AutoGluon) | overrun | "
        "trials (automl / FLAML / AutoGluon) | peak RSS MB (automl / baseline / FLAML / AutoGluon) | validation | "
        "final model |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tally = {1: 0, 0: 0, -1: 0}
    decided = {"peer": {1: 0, 0: 0, -1: 0}, "baseline": {1: 0, 0: 0, -1: 0}}
    no_peer = near_baseline = with_baseline = 0
    errors = []
    for r in results:
        for system in SYSTEMS:
            if r.get(system) and "error" in r[system]:
                errors.append(f"- {r['name']} / {LABELS[system]}: {' '.join(r[system]['error'].split())[-200:]}")
        a, b, f, g = (r.get(s) for s in SYSTEMS)
        if not _ok(a):
            lines.append(f"| {r['name']} | — | {_cell(a, 'score', '.4f')} | {_cell(b, 'score', '.4f')} | "
                         f"{_cell(f, 'score', '.4f')} | {_cell(g, 'score', '.4f')} | | | | | | | | | |")  # fmt: skip
            continue
        assert a is not None
        metric = a["metric"]
        verdict = "—"
        best = _best_peer(metric, r)
        peer_interval = baseline_interval = None
        if best is None:
            no_peer += 1
        else:
            outcome = _better(metric, a["score"], r[best]["score"])
            tally[outcome] += 1
            verdict = f"{({1: 'win', 0: 'tie', -1: 'loss'})[outcome]} ({LABELS[best]})"
            peer_interval = _interval(r["name"], metric, a, r[best])
            if peer_interval is not None:
                decided["peer"][_decided(peer_interval)] += 1
        if _ok(b):
            assert b is not None
            with_baseline += 1
            near_baseline += _within(metric, a["score"], b["score"])
            baseline_interval = _interval(r["name"], metric, a, b)
            if baseline_interval is not None:
                decided["baseline"][_decided(baseline_interval)] += 1
        overrun = max(0.0, a["wall_s"] - budget) / budget
        validation = a.get("validation") or {}
        scheme = validation.get("scheme") or "—"
        if a.get("trials_at_once"):
            scheme += f", {a['trials_at_once']} at once"
        walls = " / ".join(_cell(x, "wall_s", ".1f") for x in (a, b, f, g))
        trials = " / ".join(_cell(x, "trials", "d") for x in (a, f, g))
        rss = " / ".join(_cell(x, "peak_rss_mb", ".0f") for x in (a, b, f, g))
        lines.append(
            f"| {r['name']} | {metric} | {a['score']:.4f} | {_cell(b, 'score', '.4f')} | {_cell(f, 'score', '.4f')} | "
            f"{_cell(g, 'score', '.4f')} | {verdict} | {_show(peer_interval)} | {_show(baseline_interval)} | {walls} | "
            f"{overrun:.1%} | {trials} | {rss} | {scheme} | "
            f"{a.get('final')} ({a.get('model_family') or a.get('best_family')}) |"
        )
    lines += [
        "",
        f"**Summary vs the better of FLAML and AutoGluon on each data set: {tally[1]} wins, {tally[0]} ties, "
        f"{tally[-1]} losses** (a tie is within 0.1 % of the score"
        + (f"; {no_peer} data sets without a peer score" if no_peer else "")
        + ").",
        "",
        f"**vs the baseline: the engine is within 1 % of its score, or better, on {near_baseline} of "
        f"{with_baseline} data sets.**",
        "",
    ]
    if sum(decided["peer"].values()) or sum(decided["baseline"].values()):
        p, q = decided["peer"], decided["baseline"]
        lines += [
            "Decided by the holdout rows (the 95 % paired bootstrap interval of the difference, over "
            f"{BOOTSTRAP_DRAWS:,} resamples of the holdout, lies wholly above or below 0; positive: the "
            f"engine scores better): against the better peer, {p[1]} better, {p[-1]} worse, {p[0]} that this "
            f"holdout cannot tell apart; against the baseline, {q[1]} better, {q[-1]} worse, {q[0]} not told apart.",
            "",
        ]
    if any(r["name"] in {e["name"] for e in LARGE} for r in results):
        lines += ["diamonds_x10 is ten copies of diamonds (540k rows): its holdout rows have exact copies among "
                  "the training rows, so it measures time and memory at scale, not accuracy.", ""]  # fmt: skip
    if errors:
        lines += ["Errors:", "", *errors, ""]
    # Replace the engine section only: the other sections (fleet, MLP, serving) come from other scripts.
    old = path.read_text() if path.exists() else ""
    rest = old[old.index("\n## ") :] if "\n## " in old else ""
    path.write_text("\n".join(lines) + rest)


def main() -> None:
    global SHARED
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--only", default="", help="Comma-separated data set names (may name a large case).")
    parser.add_argument("--with-large", action="store_true", help="Also run the large cases (diamonds_x10).")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"Comma-separated, of: {','.join(SYSTEMS)}.")
    parser.add_argument(
        "--datasets",
        type=Path,
        default=None,
        help=f"A folder with CSVs and a manifest.json in the format of {SHARED}/manifest.json (default: that one).",
    )
    parser.add_argument("--setup-peers", action="store_true", help=f"Create {PEER_VENV.name} if missing, then exit.")
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / "bench" / "RESULTS.md",
        help="Markdown file whose engine section is (re)written; a smoke run may point elsewhere.",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="Keep each engine job's store (DIR/NAME/bench.db) and artifacts (DIR/NAME/art) for later study.",
    )
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "SYSTEM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_peers:
        setup_peers()
        return
    if args.one:
        one(args.one[0], args.one[1], args.budget)
        return
    if args.datasets is not None:
        SHARED = args.datasets.resolve()
        if not (SHARED / "manifest.json").is_file():
            parser.error(f"{SHARED} has no manifest.json: list its data sets there (name, file, target, task, drop)")
        os.environ["AUTOML_BENCH_DATASETS"] = str(SHARED)
    if args.keep is not None:
        if args.keep.exists() and any(args.keep.iterdir()):
            parser.error(f"{args.keep} is not empty: name a new folder for the kept stores")
        os.environ["AUTOML_BENCH_KEEP"] = str(args.keep.resolve())
    entries = _entries()
    only = [n for n in args.only.split(",") if n]
    unknown = set(only) - {e["name"] for e in entries}
    if unknown:
        parser.error(f"unknown data set(s): {', '.join(sorted(unknown))}")
    systems = [s for s in args.systems.split(",") if s]
    if set(systems) - set(SYSTEMS):
        parser.error(f"unknown system(s): {', '.join(sorted(set(systems) - set(SYSTEMS)))}")
    names = [
        e["name"] for e in entries
        if (e["name"] in only if only else not e.get("large")) or (args.with_large and e.get("large"))
    ]  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        _dataset_path(next(e for e in entries if e["name"] == name))  # generate once, before the subprocesses
        row: dict[str, Any] = {"name": name}
        for system in systems:
            cmd = [sys.executable, __file__, "--budget", str(args.budget), "--one", name, system]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.budget * 4 + 300)
            except subprocess.TimeoutExpired:
                row[system] = {"error": f"timed out after {args.budget * 4 + 300:.0f} s"}
            else:
                found = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                row[system] = json.loads(found[-1][7:]) if found else {"error": (proc.stderr or "no result")[-600:]}
            print(name, system, row[system], flush=True)
        results.append(row)
        (OUT / "results.json").write_text(json.dumps(results, indent=2))
        write_results(results, args.budget, args.results)


if __name__ == "__main__":
    main()
