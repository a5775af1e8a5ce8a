"""`remora`: the entry point; wires the command groups and keeps tracebacks away from users."""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console

from remora import __version__
from remora.cli import analyze
from remora.errors import RemoraError

EXIT_UNKNOWN_ERROR = 1
EXIT_INCORRECT_USAGE = 64  # istioctl's exit codes (istioctl/pkg/util/exit codes)

app = typer.Typer(
    name="remora",
    help="Remora: a service mesh that takes Istio's configuration API as it is.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
analyze.register(app)


@app.command()
def version() -> None:
    """Print Remora's version."""
    typer.echo(f"remora {__version__}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure becomes a one-line message and an exit status."""
    stderr = Console(stderr=True, highlight=False)
    try:
        status = app(args=argv, prog_name="remora", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        return EXIT_INCORRECT_USAGE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        return 130
    except RemoraError as exc:
        stderr.print(f"Error: {exc}", markup=False)
        return EXIT_UNKNOWN_ERROR
    except Exception as exc:  # a bug: still one line, never a traceback
        stderr.print(f"Error: internal error: {type(exc).__name__}: {exc}", markup=False)
        return EXIT_UNKNOWN_ERROR
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
