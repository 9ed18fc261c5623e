"""Tables and summaries shared by ``run``, ``jobs`` and ``leaderboard``."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.table import Table

from automl.cli.common import console, plain

LEADERBOARD_COLUMNS = (
    "rank", "run_id", "kind", "trial_number", "family", "status", "cv_score", "cv_std",
    "holdout_score", "fit_seconds", "worker", "error_code",
)  # fmt: skip


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def key_params(params: dict[str, Any] | None, limit: int = 4) -> str:
    if not params:
        return ""
    items = [f"{k}={fmt(v, 3)}" for k, v in list(params.items())[:limit]]
    return ", ".join(items) + (" …" if len(params) > limit else "")


def emit(rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str], output: str, title: str = "") -> None:
    """Print rows as a Rich table, JSON or CSV."""
    if output == "json":
        print(json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2, default=str))
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        print(buffer.getvalue(), end="")
        return
    table = Table(*columns, title=title or None, header_style="bold")
    for r in rows:
        table.add_row(*(plain(fmt(r.get(c))) for c in columns))
    console().print(table)


def selection_table(selection: list[dict[str, Any]]) -> Table:
    table = Table("family", "selected", "reason", header_style="bold", box=None)
    for choice in selection:
        mark = "[green]yes[/]" if choice["selected"] else "[dim]no[/]"
        table.add_row(choice["family"], mark, plain(choice["reason"]))
    return table


def job_summary(job: Any) -> None:
    """The end-of-run summary: best model, ensemble, holdout metrics, version, time used."""
    out = console()
    s = job.summary or {}
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(job.status, "white")
    out.print(f"[bold]job {job.id}[/] {plain(job.name)}: [{colour}]{job.status}[/]")
    if job.error_code:
        out.print(f"  [red]{job.error_code}[/]: {plain(job.error_message or '')}")
    best = s.get("best")
    if best:
        out.print(
            f"  best single trial: [bold]{best['family']}[/] (trial {best['trial']}), "
            f"CV {job.metric} {fmt(best['cv_score'])} ± {fmt(best['cv_std'])}"
        )
        out.print(f"    params: {plain(key_params(best['params'], limit=12))}")
    ens = s.get("ensemble")
    if ens:
        members = ", ".join(f"{m['family']}#{m['trial']}×{m['weight']:.2f}" for m in ens.get("members") or [])
        used = "used" if ens.get("used") else "not used"
        out.print(f"  ensemble: CV {fmt(ens.get('cv_score'))}, {used}; members {plain(members)}")
    warm = s.get("warm_start")
    if warm:
        out.print(
            f"  {plain(str(warm.get('note')))}: its {len(warm.get('configurations') or [])} best configurations first"
        )
    if s.get("stopped_early"):
        out.print(f"  [yellow]stopped early[/]: {plain(str(s['stopped_early']))}")
    for resumed in s.get("resumes") or []:
        left = f", {resumed['left_s']:.0f} s left" if resumed.get("left_s") is not None else ""
        out.print(f"  resumed at {plain(str(resumed['at']))[:19]} after {resumed['used_s']:.0f} s used{left}")
    if s.get("final_reason"):
        out.print(f"  final model: {plain(str(s['final_reason']))}")
    validation = s.get("validation")
    if validation:
        out.print(f"  validation: {plain(str(validation.get('reason', validation.get('scheme'))))}")
    calibration = s.get("calibration")
    if calibration:
        out.print(f"  probabilities calibrated: temperature {fmt(calibration.get('temperature'))}")
    holdout = s.get("holdout")
    if holdout:
        scalars = {k: v for k, v in holdout.items() if isinstance(v, int | float)}
        out.print("  holdout: " + ", ".join(f"{k} {fmt(v)}" for k, v in scalars.items()))
        if "confusion_matrix" in holdout:
            out.print(f"  confusion matrix (rows = true {plain(s.get('classes'))}): {holdout['confusion_matrix']}")
    version = s.get("version")
    if version:
        out.print(
            f"  registered [bold]{plain(version['model_name'])}[/] version {version['version']} "
            f"(version id {version['id']})"
        )
    promotion = s.get("promotion")
    if promotion and promotion.get("decision"):
        out.print(f"  promotion ({plain(str(promotion.get('policy')))}): {plain(str(promotion['decision']))}")
    trials = s.get("trials")
    if trials:
        at_once = s.get("trials_at_once") or {}
        side = ""
        if (at_once.get("trials") or 1) > 1:
            threads = at_once.get("threads_each") or 0
            side = f" ({at_once['trials']} at once" + (f", {threads} thread(s) each)" if threads > 0 else ")")
        out.print("  trials: " + ", ".join(f"{n} {k}" for k, n in trials.items()) + side)
    timing = s.get("timing")
    if timing:
        budget = f" of {timing['budget_s']:.0f} s budget" if timing.get("budget_s") else ""
        out.print(
            f"  time: {timing['elapsed_s']:.1f} s{budget} (tuning {timing['tuning_s']:.1f} s, "
            f"final refit {timing['finalize_s']:.1f} s)"
        )
