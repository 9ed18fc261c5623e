"""``automl serve`` and ``automl predict``."""

from __future__ import annotations

import socket
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from automl.cli.common import artifacts, console_err, open_store, plain, settings

if TYPE_CHECKING:
    from automl.predict import InputProblem

SHOWN_ROWS = 5
LOG_LEVELS = ("debug", "info", "warning", "error")


def register(root: typer.Typer) -> None:
    """Add the serving commands to the root app."""
    root.command()(predict)
    root.command()(serve)


def _read_rows(path: Path) -> Any:
    import pandas as pd

    from automl.errors import InputError

    if not path.is_file():
        raise InputError(
            f"input file {path} does not exist", hint="give a CSV file with a header row: --input rows.csv"
        )
    try:
        # Every cell as text, as the model's preprocessor expects raw rows; empty cells become NaN.
        return pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {path} as CSV: {str(exc).strip().splitlines()[0]}",
            hint="give a UTF-8 CSV file with a header row",
        ) from None


def _problem_summary(problems: list[InputProblem]) -> str:
    """One line per column and rule: how many rows, the first few (as CSV line numbers) and values."""
    grouped: dict[tuple[str, str], list[InputProblem]] = defaultdict(list)
    for p in problems:
        grouped[(p.column, p.type)].append(p)
    lines = []
    for (column, _), found in grouped.items():
        first = found[0]
        shown = ", ".join(f"line {p.row + 2}: {p.value!r}" for p in found[:SHOWN_ROWS])
        more = f" and {len(found) - SHOWN_ROWS} more" if len(found) > SHOWN_ROWS else ""
        rule = first.message.split(", got")[0]
        lines.append(f"  {column}: {len(found)} bad value(s) ({shown}{more}); {rule}")
    return "\n".join(lines)


def predict(
    ref: str = typer.Argument(..., help="NAME (its production version), NAME@ALIAS or NAME:VERSION."),
    input_file: Path = typer.Option(..., "--input", "-i", help="CSV file of rows to predict, with a header row."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write predictions here (default: stdout)."),
    proba: bool = typer.Option(False, "--proba", help="Classifiers: add a proba_<class> column per class."),
    log: bool = typer.Option(
        True, "--log/--no-log", help="Write the answered rows to the prediction log (AUTOML_LOG_SAMPLE_RATE)."
    ),
) -> None:
    """Predict a CSV file with a registered model version: one output row per input row, in order.
    The first column, row_id, names each row in the prediction log (the spec's id column, else a
    generated id): `automl feedback` joins true labels on it."""
    import pandas as pd

    from automl.errors import InputError
    from automl.predict import load_version, missing_columns, predict_frame, records_frame, validate_records
    from automl.registry import resolve

    frame = _read_rows(input_file)
    store = open_store()
    version = resolve(store, ref)
    label = f"{version.model_name} v{version.version} (version id {version.id})"
    schema = version.input_schema
    missing = missing_columns([str(c) for c in frame.columns], schema)
    if missing:
        kinds = {c["name"]: c.get("kind") for c in schema}
        raise InputError(
            f"{input_file} lacks {len(missing)} column(s) that {label} needs: "
            + ", ".join(f"'{m}' ({kinds[m]})" for m in missing),
            hint="add each column to the header row (leave its cells empty where the value is unknown)",
        )
    records = frame.to_dict("records")
    problems = validate_records(records, schema)
    if problems:
        raise InputError(
            f"{input_file} has values {label} cannot read:\n{_problem_summary(problems)}",
            hint="fix those cells (leave a cell empty for a missing value)",
            code="PREDICT_INPUT_INVALID",
        )
    model = load_version(artifacts(), version)
    started = time.perf_counter()
    out = predict_frame(model, records_frame(records, schema), version.task, proba=True)
    latency_ms = (time.perf_counter() - started) * 1000
    ids, id_column = _log_rows(store, version, records, out, latency_ms, settings().log_sample_rate if log else 0.0)
    if not proba:
        out["probabilities"] = None
    table = pd.DataFrame({"row_id": ids, "prediction": out["predictions"]})
    if out["probabilities"] is not None:
        for key in [str(c) for c in out["classes"]]:
            table[f"proba_{key}"] = [row[key] for row in out["probabilities"]]
    ignored = [str(c) for c in frame.columns if str(c) not in {c["name"] for c in schema} and str(c) != id_column]
    note = f"; row ids from column '{id_column}'" if id_column and id_column in frame.columns else ""
    note += f"; ignored columns: {', '.join(ignored)}" if ignored else ""
    if output is None:
        table.to_csv(sys.stdout, index=False)
    else:
        if not output.parent.is_dir():
            raise InputError(f"cannot write {output}: folder {output.parent} does not exist", hint="create it first")
        table.to_csv(output, index=False)
        note += f"; wrote {output}"
    console_err().print(f"predicted {len(table)} row(s) with {plain(label)}{plain(note)}", highlight=False)


def _log_rows(
    store: Any, version: Any, records: list[dict[str, Any]], out: dict[str, Any], latency_ms: float, rate: float
) -> tuple[list[str], str | None]:
    """Write the answered rows to the prediction log now (``rate`` of them; 0: none); their row ids
    and the spec's id column they were read from (None: generated)."""
    from automl.monitoring.log import Entry, PredictionLog, row_ids

    log = PredictionLog(lambda: store, sample_rate=rate, retention_days=settings().log_retention_days)
    id_column = log.id_column(version)
    ids = row_ids(records, id_column)
    log.record(
        Entry(version, records, out["predictions"], out["probabilities"], ids, latency_ms, "predict", datetime.now(UTC))
    )
    log.close()
    if log.failed_writes:
        console_err().print(
            "[yellow]warning[/]: the predictions were not written to the prediction log", highlight=False
        )
    return ids, id_column


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Server processes (each loads the models it serves; use up to one per core)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: debug, info, warning, error."),
) -> None:
    """Serve registered models over HTTP (OpenAPI docs at /docs). Aliases moved by any process are
    picked up within a second, without a restart. Set AUTOML_ADMIN_TOKEN to enable promote and
    rollback over HTTP."""
    import logging

    import uvicorn

    from automl.config import redact_url
    from automl.errors import InputError
    from automl.serving import create_app, serve_settings

    if log_level.lower() not in LOG_LEVELS:
        raise InputError(f"--log-level must be one of {', '.join(LOG_LEVELS)}; got '{log_level}'")
    open_store().close()  # fail now, with the fix in the message, if the store is unreachable or stale
    logging.basicConfig(format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("automl").setLevel(log_level.upper())
    console_err().print(f"serving models from {redact_url(settings().database_url)} on http://{host}:{port}")
    if workers == 1:
        uvicorn.run(create_app(serve_settings(settings())), host=host, port=port, log_level=log_level.lower())
        return
    # Each worker process builds its app from the same environment.
    config = uvicorn.Config(
        "automl.serving:create_app", factory=True, host=host, port=port, workers=workers, log_level=log_level.lower()
    )
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[_listen(host, port)]).run()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket for ``--workers`` > 1, made as uvicorn's own but with ``proto`` set to
    TCP: accepted connections inherit it, and asyncio only sets TCP_NODELAY when it is, so without
    it every keep-alive request waits ~40 ms on a delayed ACK (uvicorn issue #3149)."""
    from automl.errors import InputError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="choose another --port") from None
    sock.set_inheritable(True)
    return sock
