"""The HTTP model server: a thin FastAPI shell over the model runtime (:mod:`automl.serving.runtime`),
the registry and :mod:`automl.predict`.

``automl serve`` runs :func:`create_app` with uvicorn. Requests name a model and, optionally, a
version number (``?version=3``) or an alias (``?alias=staging``; default ``production``).

Hot swap (an alias moved by any process is picked up without a restart) is the model runtime's:
see :mod:`automl.serving.runtime`.

Predictions run in FastAPI's threadpool, at most ``predict_concurrency`` (default 1) at a time per
process: tree ensembles predict in Python under the GIL, where threads only slow each other down, so
throughput scales with processes (``automl serve --workers N``). Loaded models are made
single-threaded (:func:`single_threaded`) for the same reason.

Errors answer with the status their class carries (``http_status`` in :mod:`automl.errors`):
``NotFound`` → 404, other ``InputError`` → 400, rows that break the input schema → 422
(the shape of FastAPI's own validation errors), ``ArtifactMissing``/``ArtifactCorrupt`` → 409,
``StoreUnavailable`` → 503, any other library error → 500; bodies carry ``detail`` (the message),
``code`` and ``hint``.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from automl import registry
from automl.artifacts import ArtifactStore
from automl.config import Settings
from automl.errors import (
    AutomlError,
    InputError,
)
from automl.monitoring.log import Entry, PredictionLog, row_ids
from automl.predict import (
    ignored_columns,
    predict_frame,
    records_frame,
    validate_records,
)
from automl.serving.metrics import ServerMetrics
from automl.serving.runtime import LazyStore, ModelCache
from automl.store.base import Store
from automl.store.records import AliasEventRecord

MAX_RECORDS = 10_000
MAX_PROBLEMS = 1_000


ServeSettings = Settings  # the serving fields (admin token, alias polling, cache, concurrency) live there


def serve_settings(settings: Settings | None = None) -> Settings:
    """The settings in force: ``settings``, or the environment's."""
    return settings if settings is not None else Settings()


# -- HTTP ------------------------------------------------------------------------------------------


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_RECORDS, description="Rows to predict: one object per row, column → value."
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    version_id: int
    alias: str | None = Field(description="The alias that chose the version; null when ?version= named it.")
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = Field(description="Classifiers: per row, class label → p.")
    ignored_columns: list[str] = Field(description="Columns sent that the model does not use.")
    row_ids: list[str] = Field(
        description="Per row, the id `automl feedback` joins true labels on: the spec's id column, else generated."
    )


MAX_ID = 2**63 - 1  # ids are 64-bit integers in the store
MAX_REASON = registry.MAX_REASON


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version_id: int = Field(ge=1, le=MAX_ID)
    alias: str = Field(registry.PRODUCTION, max_length=100)
    reason: str | None = Field(None, max_length=MAX_REASON)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Version id; default: where the alias pointed before."
    )
    alias: str = Field(registry.PRODUCTION, max_length=100)
    reason: str | None = Field(None, max_length=MAX_REASON)


class BodyLimit:
    """ASGI middleware: a request whose body is larger than ``limit`` bytes is answered 413 without
    being read whole (by its Content-Length, or as soon as a streamed body passes the limit)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        refused = False

        async def counted() -> Any:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit:  # a streamed body past the limit: answer now, read no more
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:  # after the 413, whatever the app answers to the cut-off body is dropped
                await send(message)

        await self.app(scope, counted, guarded_send)

    async def _refuse(self, send: Callable[..., Any]) -> None:
        body = json.dumps(
            {
                "detail": f"the request body is larger than this server accepts ({self.limit:,} bytes)",
                "code": "BODY_TOO_LARGE",
                "hint": "send fewer records per request, or raise AUTOML_MAX_BODY_BYTES",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _validation_response(_request: Request, exc: Exception) -> JSONResponse:
    """422 that names each problem (where, what) without echoing the input back: a body of 10,000
    bad records must not come back as a body of the same size."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    shown = [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in errors[:MAX_PROBLEMS]]
    for error in shown:
        error["msg"] = str(error.get("msg", ""))[:300]
    body: dict[str, Any] = {"detail": shown}
    if len(errors) > MAX_PROBLEMS:
        body["truncated"] = f"{len(errors) - MAX_PROBLEMS} more problem(s) not listed"
    return JSONResponse(body, status_code=422)


def _admin_token(request: Request) -> str | None:
    """The server's admin token; None when the admin endpoints are disabled (unset or empty)."""
    token: SecretStr | None = request.app.state.settings.admin_token
    return (token.get_secret_value() or None) if token is not None else None


def _token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _is_admin(request: Request) -> bool:
    """Whether the request carries the admin token (any endpoint; only the admin ones require it)."""
    token = _admin_token(request)
    scheme, given = get_authorization_scheme_param(request.headers.get("authorization"))
    return token is not None and scheme.lower() == "bearer" and _token_matches(given, token)


def _redact(request: Request, text: str) -> str:
    """``text`` with the artifact folder replaced by ``<artifact root>``."""
    return text.replace(str(request.app.state.artifacts.root), "<artifact root>")


def _error_response(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, AutomlError):  # registered for AutomlError only
        raise exc
    status = exc.http_status  # each error class carries its status (automl.errors)
    detail, hint = exc.message, exc.hint
    if not _is_admin(request):  # where the server keeps its files is for its operators only
        detail, hint = _redact(request, detail), _redact(request, hint) if hint else hint
    return JSONResponse({"detail": detail, "code": exc.code, "hint": hint}, status_code=status)


def _models(request: Request) -> ModelCache:
    cache: ModelCache = request.app.state.models
    return cache


def _store(request: Request) -> Store:
    store: Store = request.app.state.store()
    return store


_bearer = HTTPBearer(auto_error=False, description="The server's AUTOML_ADMIN_TOKEN.")


def admin_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_actor: Annotated[str | None, Header(max_length=200, description="Recorded as who moved the alias.")] = None,
) -> str:
    """Let the request through only with the right bearer token; return who to record as the actor."""
    token = _admin_token(request)
    if token is None:
        raise HTTPException(
            403, "admin endpoints are disabled on this server: start it with AUTOML_ADMIN_TOKEN set to enable them"
        )
    if not _token_matches(credentials.credentials if credentials is not None else "", token):
        raise HTTPException(
            401,
            "missing or wrong admin token: send 'Authorization: Bearer <AUTOML_ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return (x_actor or "").strip() or "api"


router = APIRouter()
VersionQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Version number (not id).")]
AliasQuery = Annotated[str | None, Query(max_length=100, description="Alias; default production.")]


@router.post("/v1/models/{name}/predict", response_model=PredictResponse)
def predict(
    name: str, body: PredictRequest, request: Request, version: VersionQuery = None, alias: AliasQuery = None
) -> dict[str, Any]:
    """Predict rows with ``name@production``, ``?alias=`` or ``?version=``. The answer's ``row_ids``
    name each row in the prediction log, for `automl feedback`."""
    metrics: ServerMetrics = request.app.state.metrics
    started = time.perf_counter()
    try:
        answer = _predict(name, body, request, version, alias, started)
    except Exception as exc:
        metrics.failed(name, exc)
        raise
    metrics.answered(name, answer["version"], len(body.records), time.perf_counter() - started)
    return answer


def _predict(
    name: str, body: PredictRequest, request: Request, version: int | None, alias: str | None, started: float
) -> dict[str, Any]:
    if version is not None and alias is not None:
        raise InputError("give ?version= or ?alias=, not both", hint="drop one of them")
    cache = _models(request)
    served = (
        cache.by_number(name, version) if version is not None else cache.by_alias(name, alias or registry.PRODUCTION)
    )
    schema = served.version.input_schema
    problems = validate_records(body.records, schema, limit=MAX_PROBLEMS)
    if problems:
        raise RequestValidationError([p.to_fastapi() for p in problems])
    frame = records_frame(body.records, schema)
    with request.app.state.predict_gate:
        out = predict_frame(served.model, frame, served.version.task, proba=True)
    log: PredictionLog = request.app.state.prediction_log
    ids = row_ids(body.records, log.id_column(served.version) if log.enabled else None)
    latency_ms = (time.perf_counter() - started) * 1000
    log.record(
        Entry(
            served.version, body.records, out["predictions"], out["probabilities"], ids, latency_ms, "serve",
            datetime.now(UTC),
        )
    )  # fmt: skip
    return {
        "model": served.version.model_name,
        "version": served.version.version,
        "version_id": served.version.id,
        "alias": None if version is not None else (alias or registry.PRODUCTION),
        "predictions": out["predictions"],
        "probabilities": out["probabilities"],
        "ignored_columns": ignored_columns(body.records, schema),
        "row_ids": ids,
    }


@router.get("/v1/models")
def list_models(request: Request) -> dict[str, Any]:
    """Every registered model with its version count, newest version and aliases."""
    return {"models": registry.list_models(_store(request))}


@router.get("/v1/models/{name}")
def model_card(name: str, request: Request, version: VersionQuery = None, alias: AliasQuery = None) -> dict[str, Any]:
    """The model card of ``?version=``, ``?alias=``, or else production (the newest version if none)."""
    if version is not None and alias is not None:
        raise InputError("give ?version= or ?alias=, not both", hint="drop one of them")
    ref = registry.ModelRef(name, alias, version)
    store = _store(request)
    return registry.model_card(store, registry.resolve(store, ref, latest_if_no_alias=True))


@router.get("/v1/models/{name}/versions")
def versions(name: str, request: Request) -> dict[str, Any]:
    """Every version of ``name``, newest first, with the aliases pointing at each."""
    return {"model": name, "versions": registry.version_rows(_store(request), name)}


def _moved(request: Request, name: str, alias: str, event: AliasEventRecord | None) -> dict[str, Any]:
    _models(request).wake()
    pointer = _store(request).get_alias(name, alias)
    return {
        "model": name,
        "alias": alias,
        "version_id": pointer.version_id if pointer else None,
        "moved": event is not None,
        "event": None if event is None else {**event.__dict__, "created_at": event.created_at.isoformat()},
    }


@router.post("/v1/models/{name}/promote")
def promote(
    name: str, body: PromoteRequest, request: Request, actor: Annotated[str, Depends(admin_actor)]
) -> dict[str, Any]:
    """Point ``name@alias`` at ``version_id`` (admin token required)."""
    store, artifacts = _store(request), request.app.state.artifacts
    event = registry.promote(store, artifacts, name, body.version_id, alias=body.alias, by=actor, reason=body.reason)
    return _moved(request, name, body.alias, event)


@router.post("/v1/models/{name}/rollback")
def rollback(
    name: str, body: RollbackRequest, request: Request, actor: Annotated[str, Depends(admin_actor)]
) -> dict[str, Any]:
    """Put ``name@alias`` back on ``to``, or on where it pointed before its last move (admin token required)."""
    store, artifacts = _store(request), request.app.state.artifacts
    event = registry.rollback(store, artifacts, name, to=body.to, alias=body.alias, by=actor, reason=body.reason)
    return _moved(request, name, body.alias, event)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus' text format: requests, rows, errors and latency per model and version, the
    version each alias serves, the prediction log's rows."""
    content, media_type = request.app.state.metrics.render()
    return Response(content=content, media_type=media_type)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Ready when the store answers and every tracked alias serves the version it points at."""
    errors: list[dict[str, Any]] = []
    try:
        _store(request).list_aliases()
    except AutomlError as exc:
        errors.append({"component": "store", **exc.to_dict()})
    status = _models(request).status()
    errors += status["errors"]
    if not _is_admin(request):
        errors = [{k: _redact(request, v) if isinstance(v, str) else v for k, v in e.items()} for e in errors]
    body = {"status": "not ready" if errors else "ready", "serving": status["serving"], "errors": errors}
    return JSONResponse(body, status_code=503 if errors else 200)


def create_app(settings: Settings | None = None, *, poll: bool = True) -> FastAPI:
    """The model server. ``settings`` default to the environment (:class:`ServeSettings`); with
    ``poll=False`` aliases are only re-read when ``app.state.models.refresh()`` is called."""
    from importlib import metadata

    conf = serve_settings(settings)
    store = LazyStore(conf.database_url)
    artifacts = ArtifactStore(conf.artifact_root)
    cache = ModelCache(store, artifacts, capacity=conf.model_cache_size)
    prediction_log = PredictionLog(store, sample_rate=conf.log_sample_rate, retention_days=conf.log_retention_days)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if poll:
            cache.start_polling(conf.alias_poll_s)
        prediction_log.start()
        try:
            yield
        finally:
            cache.stop_polling()
            prediction_log.close()
            store.close()

    try:
        version = metadata.version("automl")
    except metadata.PackageNotFoundError:
        version = "0"
    app = FastAPI(title="automl model server", version=version, lifespan=lifespan)
    app.state.settings = conf
    app.state.store = store
    app.state.artifacts = artifacts
    app.state.models = cache
    app.state.prediction_log = prediction_log
    app.state.metrics = ServerMetrics(cache, prediction_log)
    app.state.predict_gate = threading.BoundedSemaphore(conf.predict_concurrency)
    app.add_exception_handler(AutomlError, _error_response)
    app.add_exception_handler(RequestValidationError, _validation_response)
    app.include_router(router)
    app.add_middleware(BodyLimit, limit=conf.max_body_bytes)
    return app
