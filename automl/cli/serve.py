"""``automl serve`` and ``automl predict``."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    """Add the serving commands to the root app."""
