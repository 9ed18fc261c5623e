"""``automl monitor``: drift, anomalies and live accuracy of a registered model's new rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import typer

from automl.cli.common import artifacts, console, open_store, plain, print_json

DRIFT_EXIT = 4  # `--fail-on-drift` and the data set drifted


def register(root: typer.Typer) -> None:
    root.command()(monitor)
    root.command()(feedback)
    root.command()(retrain)


def parse_since(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` or ``90s`` as a duration."""
    from automl.errors import InputError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        amount = float(value)
    except ValueError:
        amount = -1.0
    if unit not in units or not amount > 0:
        raise InputError(f"cannot read the window '{text}'", hint="give a number and a unit: 90s, 30m, 24h, 7d or 2w")
    return timedelta(seconds=amount * units[unit])


def monitor(
    ref: str = typer.Argument(..., help="NAME (production, else newest), NAME@ALIAS or NAME:VERSION."),
    input_path: Path | None = typer.Option(
        None,
        "--input",
        "-i",
        help="CSV or Parquet file of rows the model is asked about. With the target column, the live "
        "metric is reported beside the holdout score; the spec's id column names the rows.",
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Instead of a file: the rows the version answered in this window (24h, 7d, 30m), from the "
        "prediction log, with the labels `automl feedback` joined to them.",
    ),
    max_rows: int = typer.Option(100_000, "--max-rows", min=1, help="With --since: the newest rows at most."),
    output: str = typer.Option("table", "--format", "-f", help="table or json"),
    report: Path | None = typer.Option(None, "--report", help="Also write an HTML drift report to this file."),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help=f"Exit {DRIFT_EXIT} when the data set drifted (for cron or CI)."
    ),
    retrain_on_drift: bool = typer.Option(
        False,
        "--retrain",
        help="When the data set drifted, retrain on --retrain-data (default: the --input file, which then "
        "needs the target column), as `automl retrain` does. The spec's monitor.on_drift = retrain does the same.",
    ),
    retrain_data: Path | None = typer.Option(None, "--retrain-data", help="Rows (with the target) to retrain on."),
    drift_share: float | None = typer.Option(
        None,
        "--drift-share",
        min=0.01,
        max=1.0,
        help="Share of drifted features that makes the data set drifted "
        "(default: the spec's monitor.drift_share, 0.5).",
    ),
) -> None:
    """Compare new rows with what a model version was trained on, and store the result.

    Per feature: a drift test chosen by kind and size (Kolmogorov-Smirnov or Wasserstein distance
    for numbers, chi-square or Jensen-Shannon for categories; PSI beside each), drift of the
    predictions, anomalies (values out of the training range, unseen categories, missing-rate
    jumps, outlier rows) and, when the rows carry the true target, the live metric. Every run is
    stored; `automl models health` and the `model_health` SQL view list them.
    """
    from automl.datasets import load_table
    from automl.errors import InputError
    from automl.monitoring.monitor import monitor_frame
    from automl.registry import actor, resolve

    if output not in ("table", "json"):
        raise InputError(f"unknown output format '{output}'", hint="use table or json")
    if report is not None:
        from automl.report import check_output

        check_output(report)
    if (input_path is None) == (since is None):
        raise InputError(
            "give the rows to monitor: --input FILE or --since WINDOW (one of them)", hint="e.g. --since 24h"
        )
    store = open_store()
    version = resolve(store, ref, latest_if_no_alias=True)
    spec = store.get_job(version.job_id).spec
    if input_path is not None:
        frame = load_table(input_path).frame
        target = spec["dataset"]["target"]
        id_column = spec["dataset"].get("id_column")
        labels = frame[target] if target in frame.columns else None
        row_ids = frame[id_column].tolist() if id_column and id_column in frame.columns else None
        result = monitor_frame(
            store, artifacts(), version, frame,
            source="input", source_detail=str(input_path), actor=actor(), row_ids=row_ids, labels=labels,
            drift_share=drift_share,
        )  # fmt: skip
    else:
        from automl.monitoring.monitor import monitor_logged

        result = monitor_logged(
            store, artifacts(), version, parse_since(since or ""), actor=actor(), max_rows=max_rows,
            drift_share=drift_share, window_text=since,
        )  # fmt: skip
    if report is not None:
        from automl.monitoring.html import write_drift_report

        write_drift_report(result, report)
    if output == "json":
        print_json(result.to_dict())
    else:
        _print(result.to_dict())
        if report is not None:
            console().print(f"drift report written to {plain(report)}", highlight=False)
    on_drift = (spec.get("monitor") or {}).get("on_drift", "report")
    if result.dataset_drift and (retrain_on_drift or on_drift == "retrain"):
        data = retrain_data or input_path
        if data is None:
            raise InputError(
                "the data set drifted, but there are no rows to retrain on",
                hint="give them with --retrain-data FILE (with the target column)",
            )
        console().print(
            f"the data set drifted: retraining {plain(version.model_name)} on {plain(data)}", highlight=False
        )
        _retrain_here(store, version, data, time_s=None, trials=None, quiet=output == "json")
    if fail_on_drift and result.dataset_drift:
        raise typer.Exit(DRIFT_EXIT)


def _print(result: dict[str, Any]) -> None:
    from rich.table import Table

    from automl.cli.render import fmt as _fmt

    out = console()
    verdict = "[bold red]drift[/]" if result["dataset_drift"] else "[green]no data set drift[/]"
    out.print(
        f"{plain(result['model'])} v{result['version']} (version id {result['version_id']}): "
        f"{result['rows']:,} rows, {verdict}: {result['drifted_features']} of {len(result['features'])} "
        f"features drifted (data set drift at {result['drift_share']:.0%}); monitor run {result['monitor_run_id']}",
        highlight=False,
    )
    table = Table("feature", "kind", "method", "statistic", "threshold", "drifted", "PSI", header_style="bold")
    rows = list(result["features"])
    if result["prediction_drift"]:
        rows.append(result["prediction_drift"])
    for f in rows:
        mark = "[bold red]yes[/]" if f["drifted"] else "no"
        psi = _fmt(f["psi"]) + (f" ({f['psi_band']})" if f.get("psi_band") else "")
        table.add_row(plain(f["name"]), f["kind"], f["method"], _fmt(f["statistic"]), _fmt(f["threshold"]), mark, psi)
    out.print(table)
    anomalies = result["anomalies"]
    lines = [
        f"{plain(a['feature'])}: {a['count']:,} {a['type'].replace('_', ' ')} ({a['rate']:.1%})"
        for a in anomalies["features"]
    ]
    outliers = anomalies["outliers"]
    if outliers:
        lines.append(
            f"outlier rows: {outliers['count']:,} ({outliers['rate']:.1%}; about {outliers['expected_rate']:.0%} "
            "of training rows score as low)"
        )
    out.print(f"anomalies: {anomalies['rows']:,} rows out of range, unseen or outlying", highlight=False)
    for line in lines:
        out.print(f"  {line}", highlight=False)
    live = result["live"]
    if live:
        out.print(
            f"live {live['metric']}: {_fmt(live['value'])} on {live['rows']:,} labelled rows "
            f"(holdout {_fmt(live['holdout'])})",
            highlight=False,
        )


def feedback(
    ref: str = typer.Argument(..., help="Model name (NAME, NAME@ALIAS and NAME:VERSION name the same model)."),
    input_path: Path = typer.Option(..., "--input", "-i", help="CSV or Parquet file of row ids and true labels."),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Column of row ids (default: the spec's id column when present, else row_id)."
    ),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Column of true labels (default: the spec's target)."
    ),
) -> None:
    """Join true labels to logged predictions by row id (the `row_ids` the server answered, or the
    spec's id column); `automl monitor --since` then reports the live metric beside the holdout score."""
    from automl.datasets import load_table
    from automl.errors import InputError
    from automl.predict import native
    from automl.registry import parse_ref, resolve

    store = open_store()
    version = resolve(store, ref, latest_if_no_alias=True)
    spec = store.get_job(version.job_id).spec
    frame = load_table(input_path).frame
    spec_id = spec["dataset"].get("id_column")
    ids = id_column or (spec_id if spec_id and spec_id in frame.columns else "row_id")
    label = label_column or spec["dataset"]["target"]
    missing = [c for c in (ids, label) if c not in frame.columns]
    if missing:
        raise InputError(
            f"{input_path} has no column {', '.join(repr(m) for m in missing)}",
            hint="name the columns with --id-column and --label-column",
        )
    pairs = frame[[ids, label]].dropna(subset=[label])
    labels = {str(k): native(v) for k, v in zip(pairs[ids], pairs[label], strict=True)}
    labelled = store.set_labels(parse_ref(ref).name, labels)
    console().print(
        f"{labelled:,} logged prediction(s) of {plain(version.model_name)} labelled from {len(labels):,} "
        f"row id(s) in {plain(input_path)}" + ("" if labelled else "; no logged row has these ids"),
        highlight=False,
    )


def retrain(
    ref: str = typer.Argument(..., help="NAME (its production version, else the newest), NAME@ALIAS or NAME:VERSION."),
    data: Path = typer.Option(..., "--data", "-d", help="CSV or Parquet file of new rows, with the target column."),
    time_s: float | None = typer.Option(None, "--time", help="Override budget.time_s (seconds)."),
    trials: int | None = typer.Option(None, "--trials", help="Override budget.trials."),
    submit: bool = typer.Option(
        False, "--submit", help="Queue the job for the worker fleet instead of running it here."
    ),
    wait: bool = typer.Option(False, "--wait", help="With --submit: follow the job until it ends."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Train a new version of a model on new rows, with the spec of the version in use.

    The job warm-starts from that version's job (its best configurations first), registers a new
    version of the same model, and promotes it by the spec's policy (`if_better`: only when it
    beats the one in production on rows neither trained on). The decision is in the job's
    summary and in `automl history NAME`."""
    from automl.registry import resolve

    store = open_store()
    version = resolve(store, ref, latest_if_no_alias=True)
    if submit:
        from automl.cli.fleet import queue_job
        from automl.retrain import retrain_spec

        job_id = queue_job(store, retrain_spec(store, version, data, time_s=time_s, trials=trials), wait=wait)
        console().print(
            f"retrain of {plain(version.model_name)} v{version.version} queued as job {job_id}", highlight=False
        )
        return
    _retrain_here(store, version, data, time_s=time_s, trials=trials, quiet=quiet)


def _retrain_here(
    store: Any, version: Any, data: Path, *, time_s: float | None, trials: int | None, quiet: bool
) -> None:
    from automl.cli.jobs import run_loaded
    from automl.retrain import retrain_spec

    loaded = retrain_spec(store, version, data, time_s=time_s, trials=trials)
    intro = f"retraining {version.model_name} (from v{version.version}, job {version.job_id}) on {data}"
    run_loaded(store, loaded, quiet=quiet, report=None, intro=intro)
