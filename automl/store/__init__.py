"""The metadata store. :func:`open_store` picks the backend from the URL."""

from __future__ import annotations

from automl.store.base import Store


def open_store(url: str, *, auto_upgrade: bool | None = None) -> Store:
    """Open the store at ``url`` (SQLite file or PostgreSQL). SQLite upgrades itself on first use;
    a PostgreSQL database with a stale schema raises ``StoreSchemaStale`` naming the fix."""
    from automl.store.sql import SqlStore

    return SqlStore(url, auto_upgrade=auto_upgrade)


__all__ = ["Store", "open_store"]
