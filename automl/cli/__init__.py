"""The ``automl`` command line: a thin shell over the library.

Imports here stay light so ``automl --help`` is fast; each command imports what it needs.
Exit codes: 0 ok, 1 job failed, 2 bad input, 3 store or service problem, 4 drift found
(`automl monitor --fail-on-drift`).
"""

from __future__ import annotations

import sys

import typer

from automl.cli import datasets as datasets_cmd
from automl.cli import db as db_cmd
from automl.cli import fleet as fleet_cmd
from automl.cli import jobs as jobs_cmd
from automl.cli import models as models_cmd
from automl.cli import monitor as monitor_cmd
from automl.cli import report as report_cmd
from automl.cli import serve as serve_cmd
from automl.cli import specs as specs_cmd
from automl.cli.common import console_err

app = typer.Typer(
    name="automl",
    help="Declarative AutoML jobs with a SQL metadata store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
app.add_typer(datasets_cmd.app, name="datasets")
app.add_typer(db_cmd.app, name="db")
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(models_cmd.app, name="models")
models_cmd.register(app)
serve_cmd.register(app)
jobs_cmd.register(app)
fleet_cmd.register(app, jobs_cmd.app)
specs_cmd.register(app)
report_cmd.register(app)
monitor_cmd.register(app)


def main() -> None:
    """Console entry point: runs the app and turns library errors into messages and exit codes."""
    from automl.errors import AutomlError

    try:
        app()
    except AutomlError as exc:
        from automl.cli.common import print_error

        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console_err().print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
