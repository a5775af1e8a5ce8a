"""`remora`: the entry point; wires the command groups and keeps tracebacks away from users."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from remora import __version__
from remora.cli import (
    analyze,
    auth,
    controlplane,
    kubectl,
    load,
    proxy,
    proxystatus,
    registry,
    up,
)
from remora.errors import RemoraError

EXIT_UNKNOWN_ERROR = 1
EXIT_INCORRECT_USAGE = 64  # istioctl's exit code for usage errors
CLICK_USAGE_ERROR = 2

app = typer.Typer(
    name="remora",
    help="Remora: a service mesh that takes Istio's configuration API as it is.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
analyze.register(app)
proxy.register(app)
proxystatus.register(app)
controlplane.register(app)
kubectl.register(app)
registry.register(app)
auth.register(app)
up.register(app)
load.register(app)


@app.command()
def version() -> None:
    """Print Remora's version."""
    typer.echo(f"remora {__version__}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure becomes a one-line message and an exit status."""
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app(args=argv, prog_name="remora")  # typer reports usage errors itself, then exits 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_UNKNOWN_ERROR
        return EXIT_INCORRECT_USAGE if code == CLICK_USAGE_ERROR else code
    except KeyboardInterrupt:
        return 130
    except RemoraError as exc:
        stderr.print(f"Error: {exc}", markup=False)
        return EXIT_UNKNOWN_ERROR
    except Exception as exc:  # a bug: still one line, never a traceback
        stderr.print(f"Error: internal error: {type(exc).__name__}: {exc}", markup=False)
        return EXIT_UNKNOWN_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
