"""Top-level commands: ``validate``, ``schema``, ``config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from automl.cli.common import console, print_json, settings


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
    app.command()(config)


def validate(
    files: list[Path] = typer.Argument(..., help="Job spec files (JSON)."),
    json_out: bool = typer.Option(False, "--json", help="Print results as JSON."),
    no_data: bool = typer.Option(False, "--no-data", help="Check the spec only, not its dataset's columns."),
) -> None:
    """Validate job specs; report every problem of every file, with its JSON path. Exit 2 on any error."""
    from rich.table import Table

    from automl.cli.common import plain
    from automl.errors import SpecInvalid
    from automl.spec import load_spec_file

    results: list[dict[str, Any]] = []
    for path in files:
        try:
            loaded = load_spec_file(path, check_data=not no_data)
            results.append(
                {"file": str(path), "valid": True, "problems": [], "task": loaded.spec.task, "notes": _notes(loaded)}
            )
        except SpecInvalid as exc:
            results.append({"file": str(path), "valid": False, "problems": [p.to_dict() for p in exc.problems]})
    if json_out:
        print_json(results)
    else:
        out = console()
        for result in results:
            if result["valid"]:
                out.print(f"[green]✓[/] {plain(str(result['file']))}")
                for note in result["notes"]:
                    out.print(f"  [yellow]note:[/] {plain(note)}")
                continue
            problems = result["problems"]
            out.print(f"[red]✗[/] {plain(str(result['file']))}: {len(problems)} problem(s)")
            table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
            for col in ("path", "rule", "code", "problem"):
                table.add_column(col, overflow="fold")
            for p in problems:
                table.add_row(plain(p["path"]), p["rule"], p["code"], plain(p["message"]))
            out.print(table)
    if not all(r["valid"] for r in results):
        raise typer.Exit(2)


def _notes(loaded: Any) -> list[str]:
    """What a job will do to the spec's data beyond the spec (the profile's warnings: columns it drops,
    rows it leaves out, a rare class), when the data was read to check the spec; none about the
    columns the spec itself leaves out."""
    if loaded.table is None:
        return []
    from automl.profile import profile_frame, resolve_task, with_target

    ds = loaded.spec.dataset
    frame = loaded.table.frame
    task = resolve_task(frame[ds.target], loaded.spec.task)
    left_out = tuple(f"column '{c}' " for c in [*ds.drop, *([ds.id_column] if ds.id_column else [])])
    warnings = with_target(profile_frame(frame), frame, ds.target, task).warnings
    return [w for w in warnings if not w.startswith(left_out)]  # not about the columns the spec drops


def schema(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema of job specs (for editors and CI checks)."""
    import json

    from automl.spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        console().print(f"wrote {output}")


def config(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Print the settings in force and where each came from (environment or default)."""
    from rich.table import Table

    from automl.config import describe, redact_url

    rows = describe(settings())
    shown = [(r.name, r.env_var, redact_url(r.value) if "url" in r.name else r.value, r.source) for r in rows]
    if json_out:
        print_json([{"name": n, "env_var": e, "value": v, "source": s} for n, e, v, s in shown])
        return
    table = Table("setting", "variable", "value", "source", header_style="bold")
    for row in shown:
        table.add_row(*row)
    console().print(table)
