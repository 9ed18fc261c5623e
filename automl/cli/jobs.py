"""``automl run``, ``automl jobs`` and ``automl leaderboard``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from automl.cli.common import artifacts, console, open_store, plain, print_json, settings
from automl.cli.render import LEADERBOARD_COLUMNS, emit, fmt, job_summary, key_params, selection_table

app = typer.Typer(help="List and inspect jobs.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.command()(run)
    root.command()(leaderboard)


def _progress_display(budget: float | None, trial_cap: int | None) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    total = budget if budget is not None else float(trial_cap or 1)
    progress = Progress(
        TextColumn("[bold]tuning[/]"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console(),
        transient=False,
    )
    task = progress.add_task("starting", total=total)

    def update(p: Any) -> None:
        trials = p.done + p.failed + p.pruned
        best = f"best {fmt(p.best_score)} ({p.best_family})" if p.best_score is not None else "no score yet"
        cap = f"/{trial_cap}" if trial_cap else ""
        budget_text = f"{p.elapsed:.0f}/{budget:.0f} s, " if budget else ""
        desc = f"{budget_text}{trials}{cap} trials ({p.failed} failed, {p.pruned} pruned), {best}"
        progress.update(task, completed=p.elapsed if budget is not None else trials, description=desc)

    return progress, update


def run(
    spec_file: Path = typer.Argument(..., help="Job spec (JSON)."),
    time_s: float | None = typer.Option(None, "--time", help="Override budget.time_s (seconds)."),
    trials: int | None = typer.Option(None, "--trials", help="Override budget.trials."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    report: Path | None = typer.Option(
        None, "--report", help="At the end, write the job's HTML report to this file (even if the job failed)."
    ),
) -> None:
    """Run a job in this process on the configured store; end with a summary and the leaderboard.

    The time budget counts from the start of this command: loading and registering the data are
    inside it. Ctrl-C once finishes the job with the trials done (ensemble and version as usual);
    twice cancels it. If the process is killed, `automl jobs resume JOB_ID` continues the job."""
    from automl.spec import load_spec_file

    loaded = load_spec_file(spec_file).with_overrides(time_s=time_s, trials=trials)
    if report is not None:
        from automl.report import check_output

        check_output(report)
    run_loaded(open_store(), loaded, quiet=quiet, report=report)


def run_loaded(store: Any, loaded: Any, *, quiet: bool, report: Path | None, intro: str | None = None) -> None:
    """Submit a checked spec and run its job in this process (`automl run`, `automl retrain`); the
    job's clock starts when this process did."""
    from datetime import UTC, datetime

    import psutil

    from automl.pipeline import run_job, submit_job

    clock_started = datetime.fromtimestamp(psutil.Process().create_time(), UTC)
    job = submit_job(store, artifacts(), loaded)
    if not quiet:
        console().print(
            f"job [bold]{job.id}[/] {plain(job.name)}: {job.task}, metric {job.metric}, dataset {job.dataset_id}"
            + (f"; {plain(intro)}" if intro else "")
        )

    def call(update: Any, stop: Any) -> Any:
        return run_job(
            store, artifacts(), job.id, settings().database_url, update, clock_started, stop, settings().trial_lease_s,
            settings().parallel_trials,
        )  # fmt: skip

    run_here(store, job.id, call, quiet=quiet, report=report)


def run_here(store: Any, job_id: int, call: Any, *, quiet: bool, report: Path | None) -> None:
    """Run ``call(on_progress, stop)`` (a job in this process) with a progress display and Ctrl-C
    handling (first press: finish with the trials done; second: cancel), then print the summary."""
    import signal

    from automl.errors import AutomlError, JobNotResumable
    from automl.pipeline import StopRequest

    out = console()
    job = store.get_job(job_id)
    display, update = _progress_display(job.time_budget_s, job.trial_budget)
    stop = StopRequest()

    def on_interrupt(signum: int, frame: Any) -> None:
        stop.finish = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the second press cancels
        out.print(
            f"[yellow]Ctrl-C: finishing job {job_id} with the trials done (ensemble and version as usual); "
            "press Ctrl-C again to cancel it[/]"
        )

    previous = signal.signal(signal.SIGINT, on_interrupt)
    interrupted = False
    try:
        if quiet:
            final = call(None, stop)
        else:
            with display:
                final = call(update, stop)
    except JobNotResumable:
        raise
    except AutomlError:
        final = store.get_job(job_id)
    except KeyboardInterrupt:
        interrupted = True
        final = store.get_job(job_id)
        out.print(f"[yellow]Ctrl-C again: job {job_id} cancelled; no version was registered[/]")
    finally:
        signal.signal(signal.SIGINT, previous)
    if not quiet and final.selection:
        out.print(selection_table(final.selection))
    if not quiet:
        _leaderboard_table(store, job_id, top=10, family=None, output="table")
    job_summary(final)
    if report is not None:
        from automl.cli.report import write_and_print

        write_and_print(store, job_id, report)
    if interrupted:
        raise typer.Exit(130)
    if final.status != "succeeded":
        raise typer.Exit(1)


def _role(row: dict[str, Any], registered: int | None, members: set[int]) -> str:
    """What became of a row: the registered version's run, a member of it, or an unused ensemble."""
    if row["run_id"] == registered:
        return "registered"
    if row["run_id"] in members:
        return "member"
    if row["kind"] == "ensemble":
        return "not used"
    return ""


def _leaderboard_table(store: Any, job_id: int, top: int | None, family: str | None, output: str) -> None:
    rows = [row.to_dict() for row in store.leaderboard(job_id)]  # with the CLI's own columns added below
    params = {r.id: r.params for r in store.list_runs(job_id)}
    summary = store.get_job(job_id).summary or {}
    version = store.version_for_job(job_id)
    members = {m["run_id"] for m in (summary.get("model") or {}).get("members") or []}
    for row in rows:
        row["params"] = params.get(row["run_id"])
        row["role"] = _role(row, version.run_id if version else None, members)
    if family:
        rows = [r for r in rows if r["family"] == family]
    if top:
        rows = rows[:top]
    if output != "table":
        emit(rows, [*LEADERBOARD_COLUMNS, "role", "params"], output)
        return
    shown = [
        {
            "rank": r["rank"],
            "run": r["run_id"],
            "role": r["role"],
            "family": r["family"] if r["kind"] == "trial" else f"[{r['kind']}]",
            "status": r["status"],
            "cv": f"{fmt(r['cv_score'])} ± {fmt(r['cv_std'], 3)}" if r["cv_score"] is not None else None,
            "holdout": r["holdout_score"],
            "fit s": None if r["fit_seconds"] is None else f"{r['fit_seconds']:.2f}",
            "key params": key_params(r["params"], limit=3) if r["kind"] == "trial" else "",
        }
        for r in rows
    ]
    metric = rows[0]["metric"] if rows else ""
    emit(shown, list(shown[0]) if shown else ["rank"], "table", title=f"leaderboard of job {job_id} ({metric})")


def leaderboard(
    job_id: int | None = typer.Argument(None, help="Job id (trials ranked)."),
    model: str | None = typer.Option(None, "--model", help="A model name (its versions)."),
    top: int | None = typer.Option(None, "--top", min=1, help="Show the best N rows."),
    family: str | None = typer.Option(None, "--family", help="Only this model family."),
    output: str = typer.Option("table", "--format", help="table, json or csv."),
) -> None:
    """Ranked trials of a job, or the versions of a model (from the SQL views)."""
    from automl.errors import InputError

    if output not in ("table", "json", "csv"):
        raise InputError(f"unknown format '{output}'", hint="use --format table, json or csv")
    if (job_id is None) == (model is None):
        raise InputError("give a JOB_ID or --model NAME (one of them)", hint="automl leaderboard 3")
    if family is not None:
        from automl.candidates import family_names

        known = [*family_names(), "ensemble"]
        if family not in known:
            raise InputError(f"unknown family '{family}'", hint=f"use one of: {', '.join(known)}")
    store = open_store()
    if job_id is not None:
        store.get_job(job_id)
        _leaderboard_table(store, job_id, top, family, output)
        return
    rows = [row.to_dict() for row in store.version_summaries(str(model))]
    if not rows:
        from automl.errors import NotFound

        raise NotFound(f"no versions of model '{model}'", hint="list models' jobs with `automl jobs list`")
    columns = ["version_id", "version", "job_id", "metric", "cv_score", "holdout_score", "winner_kind",
               "winner_family", "dataset_name", "trials", "created_at"]  # fmt: skip
    emit(rows[:top] if top else rows, columns, output, title=f"versions of {model}")


@app.command("list")
def list_(
    status: str | None = typer.Option(None, help="queued, running, succeeded, failed or cancelled."),
    limit: int = typer.Option(50, min=1, help="Most recent N jobs."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List jobs, newest first. A running job whose process died (no heartbeat for the trial lease)
    is shown as such: `automl jobs resume JOB_ID` continues it."""
    from automl.errors import InputError
    from automl.pipeline import process_lost
    from automl.store.tables import JOB_STATUSES

    if status is not None and status not in JOB_STATUSES:
        raise InputError(f"unknown status '{status}'", hint=f"use one of: {', '.join(JOB_STATUSES)}")

    jobs = open_store().list_jobs(status=status, limit=limit)
    rows = []
    lease_s = settings().trial_lease_s
    for j in jobs:
        summary = j.summary or {}
        lost = process_lost(j, lease_s)
        rows.append(
            {
                "id": j.id,
                "name": j.name,
                "status": "running, process lost: `automl jobs resume`" if lost and not json_out else j.status,
                "process_lost": lost,
                "task": j.task,
                "metric": j.metric,
                "holdout": summary.get("holdout_score"),
                "version": (summary.get("version") or {}).get("version"),
                "created": j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "error": j.error_code,
            }
        )
    if json_out:
        print_json(rows)
        return
    emit(rows, ["id", "name", "status", "task", "metric", "holdout", "version", "created", "error"], "table")


@app.command()
def show(
    job_id: int = typer.Argument(..., help="Job id."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show a job: spec, candidate selection and reasons, dropped columns, errors, summary."""
    from dataclasses import asdict

    from automl.cli.common import plain

    job = open_store().get_job(job_id)
    if json_out:
        print_json(asdict(job))
        return
    out = console()
    out.print(f"[bold]job {job.id}[/] {plain(job.name)} — {job.status}")
    out.print(
        f"  task {job.task}, metric {job.metric}, dataset {job.dataset_id}, seed {job.seed}, by {job.submitted_by}"
    )
    out.print(f"  spec sha256 {job.spec_hash[:16]}…, created {job.created_at:%Y-%m-%d %H:%M:%S}")
    if job.selection:
        out.print(selection_table(job.selection))
    dropped = (job.profile or {}).get("dropped") or {}
    for column, reason in dropped.items():
        out.print(f"  dropped column [bold]{plain(column)}[/]: {plain(reason)}")
    for warning in (job.profile or {}).get("warnings", []):
        out.print(f"  [yellow]warning:[/] {plain(warning)}")
    job_summary(job)
