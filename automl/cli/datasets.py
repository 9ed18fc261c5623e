"""``automl datasets``: register, list and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from automl.cli.common import artifacts, console, open_store, print_json

app = typer.Typer(help="Register and inspect datasets (stored once per content).", no_args_is_help=True)


def _summary(col: dict[str, Any]) -> str:
    s = col.get("summary") or {}
    if "mean" in s:
        return f"mean {s['mean']:.4g}  std {s['std']:.4g}  [{s['min']:.4g}, {s['max']:.4g}]"
    if "top" in s:
        return ", ".join(f"{v} ({n})" for v, n in s["top"][:3])
    return col.get("reason") or ""


def _show(record: Any, profile: dict[str, Any], created: bool | None = None) -> None:
    from rich.table import Table

    from automl.cli.common import plain

    out = console()
    state = "" if created is None else (" [green](new)[/]" if created else " [yellow](already registered)[/]")
    out.print(f"[bold]dataset {record.id}[/] {plain(record.name)}{state}")
    out.print(
        f"  {record.n_rows:,} rows × {record.n_columns} columns, {record.format}, "
        f"{record.size_bytes:,} bytes, sha256 {record.fingerprint[:16]}…"
    )
    table = Table("column", "kind", "missing", "distinct", "summary", header_style="bold", box=None)
    for col in profile["columns"]:
        table.add_row(
            plain(col["name"]),
            col["kind"],
            f"{col['missing_fraction']:.1%}",
            str(col["distinct"]),
            plain(_summary(col)),
        )
    out.print(table)
    target = profile.get("target")
    if target:
        if target.get("class_counts"):
            counts = ", ".join(f"{k}: {v}" for k, v in target["class_counts"].items())
            out.print(f"  target [bold]{plain(target['name'])}[/] ({target['task']}): {plain(counts)}")
        elif target.get("summary"):
            t = target["summary"]
            out.print(f"  target [bold]{plain(target['name'])}[/]: mean {t['mean']:.4g}, std {t['std']:.4g}")
    for warning in profile.get("warnings", []):
        out.print(f"  [yellow]warning:[/] {plain(warning)}")


def _with_target(record: Any, target: str | None, task: str) -> dict[str, Any]:
    profile: dict[str, Any] = dict(record.profile)
    if target is None:
        return profile
    from automl.datasets import check_target, load_registered
    from automl.profile import DatasetProfile, resolve_task, with_target

    frame = load_registered(record, artifacts())
    check_target(frame, target, task, [], None)
    resolved = resolve_task(frame[target], task)
    return with_target(DatasetProfile.from_dict(profile), frame, target, resolved).to_dict()


@app.command()
def add(
    path: Path = typer.Argument(..., help="A .csv or .parquet file."),
    name: str | None = typer.Option(None, help="A name (default: the file name)."),
    fmt: str | None = typer.Option(None, "--format", help="csv or parquet (default: from the suffix)."),
    target: str | None = typer.Option(None, help="Also analyse this target column (summary, leaks)."),
    task: str = typer.Option("classification", help="Task for --target: classification or regression."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Register a dataset by content: profile it and copy it into the artifact store."""
    from dataclasses import asdict

    from automl.datasets import register_dataset

    store = open_store()
    record, created = register_dataset(store, artifacts(), path, name=name, fmt=fmt)
    profile = _with_target(record, target, task)
    if json_out:
        print_json({**asdict(record), "profile": profile, "created": created})
    else:
        _show(record, profile, created)


@app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List registered datasets."""
    from dataclasses import asdict

    from rich.table import Table

    from automl.cli.common import plain

    records = open_store().list_datasets()
    if json_out:
        print_json([{k: v for k, v in asdict(r).items() if k != "profile"} for r in records])
        return
    table = Table("id", "name", "rows", "cols", "format", "sha256", "registered", header_style="bold")
    for r in records:
        table.add_row(
            str(r.id),
            plain(r.name),
            f"{r.n_rows:,}",
            str(r.n_columns),
            r.format,
            r.fingerprint[:12],
            r.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console().print(table if records else "no datasets yet: add one with `automl datasets add PATH`")


@app.command()
def show(
    dataset_id: int = typer.Argument(..., help="Dataset id."),
    target: str | None = typer.Option(None, help="Also analyse this target column (summary, leaks)."),
    task: str = typer.Option("classification", help="Task for --target: classification or regression."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show a dataset's profile: column kinds, missing values, summaries, warnings."""
    from dataclasses import asdict

    record = open_store().get_dataset(dataset_id)
    profile = _with_target(record, target, task)
    if json_out:
        print_json({**asdict(record), "profile": profile})
    else:
        _show(record, profile)
