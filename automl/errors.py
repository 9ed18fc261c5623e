"""One error hierarchy with stable codes.

Every error the library raises on purpose is an :class:`AutomlError`. Each carries a stable
``code`` (what scripts and the HTTP API match on), a message that names the problem, and a
``hint`` that names the fix. Each subclass also inherits the builtin that fits, so callers that
only know Python's exceptions still catch them sensibly.

CLI exit codes follow from the class: 2 for bad input, 3 for a store or service problem, 1 for a
job that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class AutomlError(Exception):
    """Base of every error the library raises on purpose."""

    code: ClassVar[str] = "AUTOML_ERROR"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500  # what the HTTP server answers with it

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code  # type: ignore[misc]

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


# -- bad input (exit 2) -------------------------------------------------------------------------


class InputError(AutomlError, ValueError):
    """The user gave something we cannot use; nothing was written."""

    code = "INPUT_INVALID"
    exit_code = 2
    http_status = 400


MAX_SHOWN = 120  # characters of a user's value shown in an error


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


@dataclass(frozen=True)
class Problem:
    """One problem found while validating a spec or a dataset.

    ``path`` is a JSON path into the spec (``budget.time_s``, ``candidates.include[1]``);
    ``rule`` names the rule that failed; ``value`` is the offending value (or ``None``).
    """

    code: str
    path: str
    rule: str
    message: str
    value: Any = None

    def __post_init__(self) -> None:
        # A problem is read by a person: a 10 MB value is shown by its start and its size.
        object.__setattr__(self, "path", clip(self.path))
        object.__setattr__(self, "message", clip(self.message, 500))
        if isinstance(self.value, str | bytes) and len(self.value) > MAX_SHOWN:
            object.__setattr__(self, "value", clip(str(self.value)))
        elif isinstance(self.value, list | tuple | dict) and len(self.value) > 20:
            object.__setattr__(self, "value", None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "path": self.path,
            "rule": self.rule,
            "message": self.message,
            "value": self.value,
        }


class SpecInvalid(InputError):
    """A job spec failed validation. ``problems`` lists every problem found, not just the first."""

    code = "SPEC_INVALID"

    def __init__(self, problems: list[Problem], *, source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(problems)} problem(s){where}:"]
        lines += [f"  {p.path}: {p.message}" for p in problems]
        super().__init__("\n".join(lines), hint="fix each field listed, then run `automl validate` again")
        if problems and all(p.code == problems[0].code for p in problems):
            self.code = problems[0].code  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["problems"] = [p.to_dict() for p in self.problems]
        return data


class DatasetNotFound(InputError, FileNotFoundError):
    code = "DATASET_NOT_FOUND"


class DatasetUnreadable(InputError):
    """The file exists but cannot be parsed as a table (empty, bad bytes, ragged rows, ...)."""

    code = "DATASET_UNREADABLE"


class DatasetInvalid(InputError):
    """The table parsed but cannot be used for this job (missing target, one class, ...)."""

    code = "DATASET_INVALID"


class NotFound(InputError, LookupError):
    code = "NOT_FOUND"
    http_status = 404


class JobNotResumable(InputError):
    """A job that cannot be resumed: it ended, or its process is still alive."""

    code = "JOB_NOT_RESUMABLE"


# -- store and services (exit 3) ----------------------------------------------------------------


class StoreError(AutomlError, RuntimeError):
    code = "STORE_ERROR"
    exit_code = 3


class StoreUnavailable(StoreError, ConnectionError):
    code = "STORE_UNAVAILABLE"
    http_status = 503


class StoreSchemaStale(StoreError):
    code = "STORE_SCHEMA_STALE"


class StoreConflict(StoreError):
    """A uniqueness rule of the store refused a write (e.g. a second version for one job)."""

    code = "STORE_CONFLICT"
    http_status = 409


class ArtifactCorrupt(StoreError):
    code = "ARTIFACT_CORRUPT"
    http_status = 409


class ArtifactMissing(StoreError, FileNotFoundError):
    code = "ARTIFACT_MISSING"
    http_status = 409


# -- job failures (exit 1) ----------------------------------------------------------------------


class JobFailed(AutomlError):
    code = "JOB_FAILED"
    exit_code = 1


class BudgetExhausted(JobFailed):
    code = "BUDGET_EXHAUSTED"


class NoSuccessfulTrial(JobFailed):
    code = "NO_SUCCESSFUL_TRIAL"


class TrialFailed(JobFailed):
    """A single trial failed; recorded on its run, never fatal to the job."""

    code = "TRIAL_FAILED"


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C, or an error raised while handling it: a press that lands inside a
    database call can come out of the driver's clean-up as another error (Optuna's storage turned a
    KeyboardInterrupt in psycopg's connection check into a ``StorageInternalError``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
