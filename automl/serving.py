"""The HTTP model server: a thin FastAPI shell over the registry and :mod:`automl.predict`.

``automl serve`` runs :func:`create_app` with uvicorn. Requests name a model and, optionally, a
version number (``?version=3``) or an alias (``?alias=staging``; default ``production``).

Hot swap. Loaded models are kept by version id (:class:`ModelCache`, a small LRU; versions that an
alias currently points at are never evicted). Each ``NAME@ALIAS`` the server has answered for is
*tracked*: a background thread reads every alias from the store each ``alias_poll_s`` seconds
(one query), and when one has moved it loads the new version first and only then switches the
alias to it. A request in flight keeps the model object it started with, so nothing fails while
an alias moves, whichever process moved it. A version that cannot be loaded (artifact missing or
corrupt) is not switched to: the previous one keeps serving and ``/readyz`` answers 503 naming the
version and the path, until the alias moves again or the artifact is restored (a failed version
is retried as soon as its file changes, else every ``retry_s`` seconds).

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
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
from automl.predict import (
    ignored_columns,
    load_version,
    predict_frame,
    records_frame,
    validate_records,
    version_label,
)
from automl.store.base import Store
from automl.store.records import AliasEventRecord, ModelVersionRecord

log = logging.getLogger("automl.serving")

MAX_RECORDS = 10_000
MAX_PROBLEMS = 1_000


ServeSettings = Settings  # the serving fields (admin token, alias polling, cache, concurrency) live there


def serve_settings(settings: Settings | None = None) -> Settings:
    """The settings in force: ``settings``, or the environment's."""
    return settings if settings is not None else Settings()


# -- loaded models ---------------------------------------------------------------------------------


def single_threaded(model: Any) -> Any:
    """Set ``n_jobs = 1`` on every estimator inside ``model`` (ensemble members, pipeline steps,
    forests) and return it. The server answers many requests at once (``--workers``); a thread pool
    per request on top costs more than it gives for a few rows (an ensemble of five forests: ~200 ms
    a row with the fitted ``n_jobs=-1``, ~95 ms with 1). Predictions are the same, up to the last
    bit of a probability (the trees are summed in another order)."""
    from sklearn.base import BaseEstimator

    seen: set[int] = set()
    stack: list[Any] = [model]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, BaseEstimator):
            if getattr(obj, "n_jobs", None) not in (None, 1):
                obj.n_jobs = 1
            stack.extend(vars(obj).values())
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
    return model


@dataclass(frozen=True)
class Served:
    """A loaded version: its record and its estimator."""

    version: ModelVersionRecord
    model: Any


@dataclass(frozen=True)
class SwapError:
    """Why ``model@alias`` could not switch to the version it now points at."""

    model: str
    alias: str
    version_id: int
    code: str
    message: str
    hint: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"component": "model", **asdict(self)}


def _load_failed(version: ModelVersionRecord, exc: Exception) -> AutomlError:
    """A model that passed its checksum but does not unpickle (a library missing or too old here)."""
    return AutomlError(
        f"{version_label(version)} cannot be loaded: {type(exc).__name__}: {exc}",
        hint="serve it from an environment with the libraries it was trained with (see its job's environment)",
        code="MODEL_LOAD_FAILED",
    )


class ModelCache:
    """Loaded versions by id (LRU of ``capacity``, pinned while an alias uses them) and the version
    each tracked alias is served from. Thread-safe; :meth:`refresh` does the hot swap."""

    def __init__(
        self, store: Callable[[], Store], artifacts: ArtifactStore, *, capacity: int = 4, retry_s: float = 5.0
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._capacity = capacity
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._models: OrderedDict[int, Served] = OrderedDict()
        self._loading: dict[int, threading.Lock] = {}
        self._failed: dict[int, tuple[float, tuple[int, int] | None, AutomlError]] = {}
        self._aliases: dict[tuple[str, str], int] = {}
        self._numbers: dict[tuple[str, int], int] = {}
        self._errors: dict[tuple[str, str], SwapError] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _cached(self, version_id: int | None) -> Served | None:
        with self._lock:
            served = self._models.get(version_id) if version_id is not None else None
            if served is not None:
                self._models.move_to_end(served.version.id)
            return served

    def _signature(self, version: ModelVersionRecord) -> tuple[int, int] | None:
        """The artifact file's (mtime, size): a version that failed to load is retried at once when
        its file changes (restored), else at most every ``retry_s`` seconds."""
        try:
            stat = self._artifacts.path(version.artifact_uri).stat()
        except (OSError, ValueError):
            return None
        return stat.st_mtime_ns, stat.st_size

    def _load(self, version: ModelVersionRecord) -> Served:
        """The loaded version, loading it once however many threads ask at the same time."""
        if (hit := self._cached(version.id)) is not None:
            return hit
        with self._lock:
            gate = self._loading.setdefault(version.id, threading.Lock())
        with gate:
            if (hit := self._cached(version.id)) is not None:
                return hit
            failed, signature = self._failed.get(version.id), self._signature(version)
            if failed is not None and failed[1] == signature and time.monotonic() - failed[0] < self._retry_s:
                raise type(failed[2])(failed[2].message, hint=failed[2].hint)
            try:
                served = Served(version, single_threaded(load_version(self._artifacts, version)))
            except Exception as exc:
                error = exc if isinstance(exc, AutomlError) else _load_failed(version, exc)
                self._failed[version.id] = (time.monotonic(), signature, error)
                raise error from None
            with self._lock:
                self._failed.pop(version.id, None)
                self._models[version.id] = served
                self._loading.pop(version.id, None)
                pinned = set(self._aliases.values()) | {version.id}
                for vid in [v for v in self._models if v not in pinned][: max(0, len(self._models) - self._capacity)]:
                    del self._models[vid]
            log.info("loaded %s v%s (version id %s)", version.model_name, version.version, version.id)
            return served

    def by_alias(self, name: str, alias: str) -> Served:
        """The version ``name@alias`` is served from; the first request resolves it and starts tracking it."""
        registry.check_alias(alias)
        with self._lock:
            current = self._aliases.get((name, alias))
        if (hit := self._cached(current)) is not None:
            return hit
        served = self._load(registry.resolve(self._store(), registry.ModelRef(name, alias)))
        with self._lock:
            self._aliases.setdefault((name, alias), served.version.id)
        return served

    def by_number(self, name: str, number: int) -> Served:
        """Version ``number`` of ``name`` (versions never change, so the lookup is remembered)."""
        with self._lock:
            known = self._numbers.get((name, number))
        if (hit := self._cached(known)) is not None:
            return hit
        served = self._load(registry.resolve(self._store(), registry.ModelRef(name, version=number)))
        with self._lock:
            self._numbers[(name, number)] = served.version.id
        return served

    def refresh(self) -> None:
        """Re-read every alias once; switch each tracked alias that moved, after loading its version."""
        with self._lock:
            tracked = dict(self._aliases)
        if not tracked:
            return
        pointers = {(a.model_name, a.alias): a.version_id for a in self._store().list_aliases()}
        for key, current in tracked.items():
            target = pointers.get(key)
            if target is None or target == current:
                if target == current:
                    with self._lock:
                        self._errors.pop(key, None)
                continue  # an alias that disappeared keeps serving what it had
            try:
                self._load(self._store().get_model_version(target))
            except AutomlError as exc:
                error = SwapError(key[0], key[1], target, exc.code, exc.message, exc.hint)
                with self._lock:
                    if self._errors.get(key) != error:
                        log.error("%s@%s stays on version id %s: %s", *key, current, exc)
                    self._errors[key] = error
                continue
            with self._lock:
                self._aliases[key] = target
                self._errors.pop(key, None)
            log.info("%s@%s now served from version id %s (was %s)", *key, target, current)

    def status(self) -> dict[str, Any]:
        """What each tracked alias is served from, and the swaps that failed."""
        with self._lock:
            aliases = dict(self._aliases)
            versions = {vid: s.version.version for vid, s in self._models.items()}
            errors = [e.to_dict() for e in self._errors.values()]
        serving = [
            {"model": n, "alias": a, "version": versions.get(vid), "version_id": vid}
            for (n, a), vid in sorted(aliases.items())
        ]
        return {"serving": serving, "errors": errors}

    def start_polling(self, interval_s: float) -> None:
        """Run :meth:`refresh` every ``interval_s`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.refresh()
                except Exception as exc:  # the store is down: keep serving, /readyz says why
                    log.warning("alias refresh failed: %s", exc)
                self._wake.wait(interval_s)
                self._wake.clear()

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="automl-alias-poller", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Refresh now rather than at the next tick (after this process moved an alias)."""
        self._wake.set()

    def stop_polling(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class _LazyStore:
    """The store, opened on first use so the server starts (and /healthz answers) with the DB down."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from automl.store import open_store

                    self._store = open_store(self._url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


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
    """Predict rows with ``name@production``, ``?alias=`` or ``?version=``."""
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
    return {
        "model": served.version.model_name,
        "version": served.version.version,
        "version_id": served.version.id,
        "alias": None if version is not None else (alias or registry.PRODUCTION),
        "predictions": out["predictions"],
        "probabilities": out["probabilities"],
        "ignored_columns": ignored_columns(body.records, schema),
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
    store = _LazyStore(conf.database_url)
    artifacts = ArtifactStore(conf.artifact_root)
    cache = ModelCache(store, artifacts, capacity=conf.model_cache_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if poll:
            cache.start_polling(conf.alias_poll_s)
        try:
            yield
        finally:
            cache.stop_polling()
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
    app.state.predict_gate = threading.BoundedSemaphore(conf.predict_concurrency)
    app.add_exception_handler(AutomlError, _error_response)
    app.add_exception_handler(RequestValidationError, _validation_response)
    app.include_router(router)
    app.add_middleware(BodyLimit, limit=conf.max_body_bytes)
    return app
