"""Alembic migrations of the automl metadata store (see README.md in this folder)."""
