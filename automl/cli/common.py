"""Helpers shared by the CLI commands: consoles, settings, store, error printing."""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from automl.artifacts import ArtifactStore
    from automl.config import Settings
    from automl.errors import AutomlError
    from automl.store import Store


@cache
def console() -> Console:
    from rich.console import Console

    return Console()


@cache
def console_err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


@cache
def settings() -> Settings:
    from automl.config import load_settings

    return load_settings()


def open_store() -> Store:
    from automl.store import open_store as _open

    return _open(settings().database_url)


def artifacts() -> ArtifactStore:
    from automl.artifacts import ArtifactStore

    return ArtifactStore(settings().artifact_root)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if chr(c) not in "\n\t"}


def plain(value: Any) -> str:
    """``value`` as text that the terminal shows as it is: Rich markup escaped (a class label
    ``[/]`` is printed, not parsed) and control characters (ANSI escapes) spelled out as ``\\x1b``."""
    from rich.markup import escape

    return escape(str(value).translate(_CONTROL))


def print_error(exc: AutomlError) -> None:
    err = console_err()
    err.print(f"[bold red]error[/] [dim]{exc.code}[/]: {plain(exc.message)}")
    if exc.hint:
        err.print(f"  [cyan]fix:[/] {plain(exc.hint)}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
