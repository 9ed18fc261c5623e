"""``automl models``, ``automl promote``, ``automl rollback`` and ``automl history``."""

from __future__ import annotations

from typing import Any

import typer

from automl.cli.common import artifacts, console, open_store, print_json

app = typer.Typer(help="Registered models, their versions and aliases.", no_args_is_help=True)

FORMAT_HELP = "table, json or csv"
ALIAS_HELP = "The alias to move."
BY_HELP = "Who is moving it (recorded; default: $USER)."


def register(root: typer.Typer) -> None:
    """Add the registry commands to the root app."""
    root.command()(promote)
    root.command()(rollback)
    root.command()(history)


def _format(output: str) -> str:
    if output not in ("table", "json", "csv"):
        from automl.errors import InputError

        raise InputError(f"unknown output format '{output}'", hint=f"use one of: {FORMAT_HELP}")
    return output


@app.command("list")
def list_models(output: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP)) -> None:
    """Every model: its number of versions, newest version and aliases."""
    from automl.cli.render import emit
    from automl.registry import list_models as rows_of

    rows = rows_of(open_store())
    for r in rows:
        r["aliases_text"] = ", ".join(f"{a}→v{p['version']} (id {p['version_id']})" for a, p in r["aliases"].items())
    if _format(output) == "json":
        print_json(rows)
        return
    columns = ["model", "versions", "latest_version", "latest_version_id", "task", "metric", "aliases_text"]
    if not rows and output == "table":
        console().print("no models yet: a successful `automl run SPEC` registers the first version")
        return
    emit(rows, columns, output, title="models")


@app.command("versions")
def versions(
    name: str = typer.Argument(..., help="Model name."),
    output: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
) -> None:
    """Every version of a model, newest first, with the aliases pointing at each."""
    from automl.cli.render import emit
    from automl.registry import version_rows

    rows = version_rows(open_store(), name)
    if _format(output) == "json":
        print_json(rows)
        return
    for r in rows:
        r["aliases"] = ", ".join(r["aliases"])
    columns = ["version_id", "version", "job_id", "created_at", "metric", "cv_score", "holdout_score", "aliases"]
    emit(rows, columns, output, title=f"{name}: versions")


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME (production, else newest), NAME@ALIAS or NAME:VERSION."),
    output: str = typer.Option("table", "--format", "-f", help="table or json"),
) -> None:
    """The model card of one version: spec, dataset, metrics, members and lineage."""
    from automl.registry import model_card, resolve

    store = open_store()
    card = model_card(store, resolve(store, ref, latest_if_no_alias=True))
    if _format(output) != "table":
        print_json(card)
        return
    _print_card(card)


def _print_card(card: dict[str, Any]) -> None:
    from rich.table import Table

    from automl.cli.common import plain
    from automl.cli.render import fmt

    out = console()
    aliases = ", ".join(card["aliases"]) or "no alias"
    out.print(f"[bold]{card['model']}[/] v{card['version']} (version id {card['version_id']}) — {aliases}")
    facts = Table(show_header=False, box=None)
    lineage, dataset = card["lineage"], card["dataset"]
    rows = [
        ("task / metric", f"{card['task']} / {card['metric']}"),
        ("cv score", fmt(card["cv_score"])),
        ("holdout score", fmt(card["holdout_score"])),
        ("final model", str(card["final_model"])),
        ("created", card["created_at"]),
        ("job", f"{lineage['job_id']} ({lineage['job_name']}, by {lineage['submitted_by']})"),
        ("trials", f"{lineage['trials_succeeded']} succeeded of {lineage['trial_runs']}"),
        ("dataset", f"{dataset['name']} (id {dataset['id']}), {dataset['rows']:,} rows × {dataset['columns']} columns"),
        ("fingerprint", dataset["fingerprint"]),
        ("artifact", f"{card['artifact']['uri']} (sha256 {card['artifact']['sha256'][:16]}…)"),
        ("spec sha256", lineage["spec_hash"]),
    ]
    for key, value in rows:
        facts.add_row(f"[dim]{key}[/]", plain(str(value)))
    out.print(facts)
    if card["holdout_metrics"]:
        out.print("holdout: " + ", ".join(f"{k} {fmt(v)}" for k, v in sorted(card["holdout_metrics"].items())))
    if card["ensemble_members"]:
        members = ", ".join(
            f"{m['family']} (trial {m['trial']}, w {fmt(m['weight'], 3)})" for m in card["ensemble_members"]
        )
        out.print(f"ensemble: {plain(members)}")
    elif card["best_trial"]:
        best = card["best_trial"]
        out.print(f"model: {best['family']} (trial {best['trial']})")
    features = ", ".join(f"{c['name']} ({c['kind']})" for c in card["input_schema"])
    out.print(f"inputs: {plain(features)}")
    for warning in card["dataset"]["warnings"]:
        out.print(f"[yellow]dataset warning:[/] {plain(str(warning))}")
    if card["promotion"]:
        p = card["promotion"]
        out.print(f"promotion ({p.get('policy')}): {plain(str(p.get('decision')))}")


def _moved(event: Any, name: str, alias: str) -> None:
    out = console()
    if event is None:
        out.print(f"{name}@{alias} already points there: nothing moved, nothing recorded")
        return
    frm = f"version id {event.from_version_id}" if event.from_version_id is not None else "nothing"
    out.print(
        f"{name}@{alias}: {frm} → version id {event.to_version_id} "
        f"(event {event.id}, by {event.actor}{', ' + event.reason if event.reason else ''})"
    )


def promote(
    name: str = typer.Argument(..., help="Model name."),
    version_id: int = typer.Argument(..., help="The version id to point the alias at (see `automl models versions`)."),
    alias: str = typer.Option("production", "--alias", help=ALIAS_HELP),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the audit trail)."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
) -> None:
    """Point an alias (default production) at a version; refused if its artifact is missing or damaged."""
    from automl.registry import promote as do_promote

    event = do_promote(open_store(), artifacts(), name, version_id, alias=alias, by=by, reason=reason)
    _moved(event, name, alias)


def rollback(
    name: str = typer.Argument(..., help="Model name."),
    to: int | None = typer.Option(None, "--to", help="Version id to go back to (default: the previous one)."),
    alias: str = typer.Option("production", "--alias", help=ALIAS_HELP),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the audit trail)."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
) -> None:
    """Put an alias back on an earlier version: the one it pointed to before its last move, or --to."""
    from automl.registry import rollback as do_rollback

    event = do_rollback(open_store(), artifacts(), name, to=to, alias=alias, by=by, reason=reason)
    _moved(event, name, alias)


def history(
    name: str = typer.Argument(..., help="Model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only this alias."),
    output: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
) -> None:
    """The audit trail of a model's aliases: every move, when, by whom, from, to and why."""
    from automl.cli.render import emit
    from automl.registry import history as events_of

    store = open_store()
    numbers = {v.id: v.version for v in store.list_model_versions(name)}
    rows = [
        {
            "event": e.id,
            "at": e.created_at.isoformat(timespec="seconds"),
            "alias": e.alias,
            "from_version_id": e.from_version_id,
            "from_version": numbers.get(e.from_version_id) if e.from_version_id is not None else None,
            "to_version_id": e.to_version_id,
            "to_version": numbers.get(e.to_version_id) if e.to_version_id is not None else None,
            "by": e.actor,
            "reason": e.reason,
            "action": (e.details or {}).get("action", "promote"),
            "details": e.details,
        }
        for e in events_of(store, name, alias)
    ]
    if _format(output) == "json":
        print_json(rows)
        return
    columns = ["event", "at", "alias", "action", "from_version_id", "to_version_id", "by", "reason"]
    if not rows and output == "table":
        console().print(f"{name}: no alias has been moved yet")
        return
    emit(rows, columns, output, title=f"{name}: alias history")


@app.command("health")
def health(
    name: str | None = typer.Argument(None, help="Model name (default: every model)."),
    output: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Most recent monitor runs shown."),
) -> None:
    """Recent `automl monitor` runs: drift, anomalies and live metric per model version.

    The same rows are the `model_health` SQL view, e.g. the production models that drifted:
    SELECT DISTINCT model_name FROM model_health WHERE in_production = 1 AND dataset_drift.
    """
    import dataclasses

    from automl.cli.render import emit

    rows = [dataclasses.asdict(r) for r in open_store().model_health(name)[:limit]]
    if _format(output) == "json":
        print_json(rows)
        return
    if not rows and output == "table":
        console().print("no monitor runs yet: `automl monitor MODEL --input FILE` records the first")
        return
    columns = [
        "monitor_run_id", "model_name", "version", "in_production", "checked_at", "rows", "drifted_features",
        "features", "dataset_drift", "prediction_drift", "anomaly_rows", "live_metric", "live_value", "holdout_value",
    ]  # fmt: skip
    emit(rows, columns, output, title="model health")
