"""Fleet commands: ``worker``, ``submit``, ``status``, ``cancel`` and ``jobs resume``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from automl.cli.common import artifacts, console, open_store, plain, print_json, settings


def register(root: typer.Typer, jobs: typer.Typer) -> None:
    root.command()(worker)
    root.command()(submit)
    root.command()(status)
    root.command()(cancel)
    jobs.command()(resume)


def _celery() -> Any:
    from workers.app import create_app

    return create_app(settings())


def _send(app: Any, name: str, args: list[Any]) -> None:
    from kombu.exceptions import OperationalError

    from automl.config import redact_url
    from automl.errors import StoreUnavailable

    try:
        app.send_task(name, args=args, retry=True, retry_policy={"max_retries": 3, "interval_start": 0.5})
    except OperationalError as exc:
        raise StoreUnavailable(
            f"cannot reach the broker at {redact_url(settings().broker_url)}: {exc}",
            hint="start Redis or set AUTOML_BROKER_URL; the job stays queued: `automl jobs resume JOB_ID`",
            code="BROKER_UNAVAILABLE",
        ) from exc


def worker(
    concurrency: int = typer.Option(1, "--concurrency", "-c", help="Worker processes (one trial each)."),
    queues: str = typer.Option("automl.control,automl.trials", "--queues", "-Q", help="Queues to consume."),
    loglevel: str = typer.Option("INFO", help="Log level."),
    name: str | None = typer.Option(None, help="Worker node name (default automl-<pid>@<host>)."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="Threads per trial for specs with n_jobs -1 (default: AUTOML_WORKER_THREADS, else cores / "
        "--concurrency). Several workers on one machine: cores / workers each.",
    ),
) -> None:
    """Start a Celery worker of the fleet (needs AUTOML_DATABASE_URL, AUTOML_BROKER_URL, AUTOML_ARTIFACT_ROOT)."""
    import os

    from automl.config import ENV_PREFIX, available_cores

    open_store().close()  # refuse to start on an unreachable or stale store, with the fix
    # Trials of a spec that asks for every core share the machine with the worker's other
    # processes: fits that each start a thread per core on a busy machine are slowed many times
    # over (OpenMP threads spin while they wait), and run past their deadlines.
    share = threads or settings().worker_threads or max(1, available_cores() // concurrency)
    os.environ[f"{ENV_PREFIX}WORKER_THREADS"] = str(share)
    argv = ["worker", f"--concurrency={concurrency}", f"--queues={queues}", f"--loglevel={loglevel}"]
    argv += [f"--hostname={name or f'automl-{os.getpid()}@%h'}", "--without-gossip", "--without-mingle"]
    _celery().worker_main(argv)


def submit(
    spec_files: list[Path] = typer.Argument(..., help="Job specs (JSON)."),
    time_s: float | None = typer.Option(None, "--time", help="Override budget.time_s (seconds)."),
    trials: int | None = typer.Option(None, "--trials", help="Override budget.trials."),
    parallel: int = typer.Option(
        4, "--parallel", min=1, max=256, help="Trial tasks fanned out per job (up to one per worker)."
    ),
    wait: bool = typer.Option(False, "--wait", help="Follow the jobs until they end."),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="With --wait: write each job's HTML report when it ends (several specs: PATH gets -job<ID> added).",
    ),
) -> None:
    """Validate specs, register their datasets in the artifact store, queue the jobs for the fleet."""
    from automl.spec import load_spec_file

    if report is not None and not wait:
        from automl.errors import InputError

        raise InputError(
            "--report needs --wait: the report is written when the job ends",
            hint=f"add --wait, or write it later with `automl report JOB_ID --output {report}`",
        )
    if report is not None:
        from automl.report import check_output

        check_output(report)

    # Every spec valid, overrides included, before any job is queued.
    loaded = [load_spec_file(path).with_overrides(time_s=time_s, trials=trials) for path in spec_files]
    store, app = open_store(), _celery()
    ids = [_queue(store, app, spec, parallel) for spec in loaded]
    if wait:
        failed = [job_id for job_id in ids if _follow(store, job_id).status != "succeeded"]
        if report is not None:
            from automl.cli.report import write_and_print

            for job_id in ids:
                path = report if len(ids) == 1 else report.with_name(f"{report.stem}-job{job_id}{report.suffix}")
                write_and_print(store, job_id, path)
        if failed:
            raise typer.Exit(1)


def _queue(store: Any, app: Any, spec: Any, parallel: int) -> int:
    from automl.pipeline import submit_job

    job = submit_job(store, artifacts(), spec)
    _send(app, "automl.start_job", [job.id, parallel])
    console().print(f"queued job [bold]{job.id}[/] {plain(job.name)}")
    return int(job.id)


def queue_job(store: Any, spec: Any, *, parallel: int = 4, wait: bool = False) -> int:
    """Queue one checked spec for the fleet (as `automl submit` does); with ``wait``, follow it and
    exit 1 when it does not succeed."""
    job_id = _queue(store, _celery(), spec, parallel)
    if wait and _follow(store, job_id).status != "succeeded":
        raise typer.Exit(1)
    return job_id


def _progress(store: Any, job_id: int) -> dict[str, Any]:
    job = store.get_job(job_id)
    runs = [r for r in store.list_runs(job_id) if r.kind == "trial"]
    counts = {s: sum(1 for r in runs if r.status == s) for s in ("running", "succeeded", "pruned", "failed", "timeout")}
    scored = [r for r in runs if r.status == "succeeded" and r.cv_score is not None]
    best = None
    if scored:
        pick = max if job.greater_is_better else min
        top = pick(scored, key=lambda r: r.cv_score or 0.0)
        best = {"family": top.family, "cv_score": top.cv_score, "trial": top.trial_number}
    left = None
    if job.time_budget_s is not None and job.started_at is not None and not job.done:
        left = max(0.0, job.time_budget_s - (datetime.now(UTC) - job.started_at).total_seconds())
    workers = sorted({r.worker for r in runs if r.worker})
    return {
        "id": job.id, "name": job.name, "status": job.status, "metric": job.metric, "trials": counts,
        "trials_started": job.trials_started, "trial_budget": job.trial_budget, "best": best, "time_left_s": left,
        "workers": workers, "cancel_requested": job.cancel_requested, "error_code": job.error_code,
        "error_message": job.error_message,
    }  # fmt: skip


def _show_progress(p: dict[str, Any]) -> None:
    from automl.cli.common import plain

    best = f"best {p['metric']} {p['best']['cv_score']:.4f} ({p['best']['family']})" if p["best"] else "no score yet"
    left = f", {p['time_left_s']:.0f} s left" if p["time_left_s"] is not None else ""
    counts = ", ".join(f"{n} {s}" for s, n in p["trials"].items() if n)
    console().print(
        f"job {p['id']} {plain(p['name'])}: [bold]{p['status']}[/]; {counts or 'no trials yet'}; {best}{left}"
        + (f"; {len(p['workers'])} worker(s)" if p["workers"] else "")
        + (f"\n  [red]{p['error_code']}[/]: {plain(p['error_message'] or '')}" if p["error_code"] else "")
    )


def _follow(store: Any, job_id: int, interval: float = 2.0) -> Any:
    last = None
    while True:
        p = _progress(store, job_id)
        line = (p["status"], p["trials"], p["best"])
        if line != last:
            _show_progress(p)
            last = line
        if p["status"] in ("succeeded", "failed", "cancelled"):
            return store.get_job(job_id)
        time.sleep(interval)


def status(
    job_id: int = typer.Argument(..., help="Job id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing progress until the job ends."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Progress of a job from the store: trials done, best so far, time left, workers."""
    store = open_store()
    if follow:
        _follow(store, job_id)
        return
    p = _progress(store, job_id)
    if json_out:
        print_json(p)
    else:
        _show_progress(p)


def cancel(job_id: int = typer.Argument(..., help="Job id.")) -> None:
    """Cancel a job: a queued one never starts; running trials stop at their next check (a fold or a heartbeat)."""
    job = open_store().request_cancel(job_id)
    if job.status == "cancelled":
        console().print(f"job {job_id} cancelled")
    elif job.done:
        console().print(f"job {job_id} already ended: {job.status}")
    else:
        console().print(f"job {job_id}: cancel requested; its running trials stop at their next check")


def resume(
    job_id: int = typer.Argument(..., help="Job id."),
    here: bool | None = typer.Option(
        None,
        "--here/--fleet",
        help="Continue the job in this process, or re-enqueue it for the workers. Default: in this process "
        "for a job run by `automl run` or on a SQLite store, else the fleet. Use --here on a fleet job only "
        "when no worker runs it.",
    ),
    time_s: float | None = typer.Option(
        None, "--time", help="In this process: seconds the job gets from now (default: what it had not used)."
    ),
    parallel: int = typer.Option(4, "--parallel", min=1, max=256, help="Fleet: trial tasks to fan out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="In this process: no progress display."),
) -> None:
    """Continue a job whose process or workers died, keeping every run recorded and its study.

    In this process, a running job is taken over once its process has not stamped it for the trial
    lease (AUTOML_TRIAL_LEASE_S); the runs it left running are failed as lost, and the job gets the
    time it had not used. A queued job starts. On the fleet, the job is re-enqueued for the workers.
    """
    from automl import fleet
    from automl.spec import MAX_TIME_S
    from automl.store.urls import is_sqlite

    if time_s is not None and not 0 < time_s <= MAX_TIME_S:  # also refuses nan
        from automl.errors import InputError

        raise InputError(
            f"--time {time_s} is not a number of seconds in (0, {MAX_TIME_S:.0f}]",
            hint="give the seconds the resumed job gets from now, e.g. --time 120",
        )
    store = open_store()
    job = store.get_job(job_id)
    if here if here is not None else (job.heartbeat_at is not None or is_sqlite(settings().database_url)):
        from automl.cli.jobs import run_here
        from automl.pipeline import resume_job

        def call(update: Any, stop: Any) -> Any:
            return resume_job(
                store, artifacts(), job_id, settings().database_url, update, time_s, stop, settings().trial_lease_s,
                settings().parallel_trials,
            )  # fmt: skip

        run_here(store, job_id, call, quiet=quiet, report=None)
        return
    app = _celery()
    dispatch = fleet.Dispatch(
        run_trials=lambda j: _send(app, "automl.run_trials", [j]),
        finalize=lambda j: _send(app, "automl.finalize", [j]),
        check_later=lambda j, delay: _send(app, "automl.run_trials", [j]),
    )
    state = fleet.resume(store, job_id, dispatch, parallel, lambda j: _send(app, "automl.start_job", [j, parallel]))
    console().print(f"job {job_id}: {state}")
