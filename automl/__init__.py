"""automl: a declarative AutoML job runner with a SQL metadata store."""

__version__ = "0.1.0"
