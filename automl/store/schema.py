"""Schema management: Alembic configured in code, stale-schema detection, self-upgrade for SQLite.

Our Alembic version table is ``automl_alembic_version`` so it never meets Optuna's own
``alembic_version`` in a shared database.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from automl.errors import StoreSchemaStale

VERSION_TABLE = "automl_alembic_version"


def migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).resolve().parent


def alembic_config(url: str, engine: Engine | None = None) -> Config:
    """An Alembic config for ``url``; with ``engine``, migrations run on its connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them with `alembic merge`")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(engine: Engine, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url, engine), revision)


def downgrade(engine: Engine, url: str, revision: str) -> None:
    command.downgrade(alembic_config(url, engine), revision)


@contextlib.contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[None]:
    """Serialize self-upgrades of one SQLite file between processes (several commands started at
    once on a store that does not exist yet would each create the tables). An exclusive lock on a
    file beside the database, not on the database itself: closing another descriptor of the
    database file would drop SQLite's own locks held by this process."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.upgrade-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_schema(engine: Engine, url: str, *, auto_upgrade: bool) -> None:
    """Upgrade an embedded database in place, or refuse a stale server database with the fix."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()}
    if current is not None and current not in known:
        raise StoreSchemaStale(
            f"the database schema is at revision {current}, which this version of automl does not know",
            hint="upgrade automl to the version that wrote this database",
        )
    if auto_upgrade:
        with _upgrade_lock(engine):
            if current_revision(engine) != head:  # another process may have upgraded it meanwhile
                upgrade(engine, url)
        return
    where = "an empty database" if current is None else f"revision {current}"
    raise StoreSchemaStale(
        f"the metadata store schema is {where}; this version of automl needs revision {head}",
        hint=f"run: AUTOML_DATABASE_URL='{engine.url.render_as_string(hide_password=True)}' automl db upgrade",
    )
