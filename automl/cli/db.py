"""``automl db``: schema migrations of the metadata store."""

from __future__ import annotations

import typer

from automl.cli.common import console, settings

app = typer.Typer(help="Manage the metadata store schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Option("head", help="Target revision.")) -> None:
    """Upgrade the store at AUTOML_DATABASE_URL to the newest schema (or --revision)."""
    from automl.config import redact_url
    from automl.store import schema
    from automl.store.urls import make_engine, normalize_url

    url = normalize_url(settings().database_url)
    engine = make_engine(url)
    try:
        before = schema.current_revision(engine)
        schema.upgrade(engine, url, revision)
        after = schema.current_revision(engine)
    finally:
        engine.dispose()
    console().print(f"{redact_url(url)}: {before or 'empty'} → [bold]{after}[/]")


@app.command()
def downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base' for an empty schema.")) -> None:
    """Downgrade the store schema to REVISION (data in dropped tables is lost)."""
    from automl.store import schema
    from automl.store.urls import make_engine, normalize_url

    url = normalize_url(settings().database_url)
    engine = make_engine(url)
    try:
        schema.downgrade(engine, url, revision)
        console().print(f"now at {schema.current_revision(engine) or 'base'}")
    finally:
        engine.dispose()


@app.command()
def current() -> None:
    """Print the store's schema revision and the newest one this version knows."""
    from automl.config import redact_url
    from automl.store import schema
    from automl.store.urls import make_engine, normalize_url

    url = normalize_url(settings().database_url)
    engine = make_engine(url)
    try:
        rev = schema.current_revision(engine)
    finally:
        engine.dispose()
    head = schema.head_revision()
    state = "up to date" if rev == head else "needs `automl db upgrade`"
    console().print(f"{redact_url(url)}: revision {rev or 'none (empty)'}; newest {head} ({state})")
