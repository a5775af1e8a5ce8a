"""`remora`: the entry point; wires the command groups and keeps tracebacks away from users.

Commands are registered lazily: `remora version` must not pay for pydantic, asyncio and the
proxy that `remora proxy` needs. `COMMANDS` below maps each top-level command (or command
group) to the module that defines it and the one-line help `remora --help` lists; the module
is imported only when its command runs (or its own `--help` is asked for). `remora --help`
reads the table and imports nothing.

To add a command:

1. Write it in its own module of `remora.cli` with a `register(app: typer.Typer)` that adds it
   (`app.command("name")(function)` or `app.add_typer(group, name="name")`), as the modules
   here do. Import only what the module-level definitions need (typer, the standard library);
   import heavy things (pydantic models, httpx, asyncio, rich tables) inside the functions.
2. Add a row to `COMMANDS`: `"name": ("remora.cli.module", "The docstring's first paragraph.")`.
   The row's place is the command's place in `remora --help`.
   `tests/unit/cli/test_main.py` fails when the help in the table and the command's own
   differ, or a module registers a command the table does not list.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from remora import __version__
from remora.errors import RemoraError

EXIT_UNKNOWN_ERROR = 1
EXIT_INCORRECT_USAGE = 64  # istioctl's exit code for usage errors
CLICK_USAGE_ERROR = 2

COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("remora.cli.analyze",
                "Find problems in Istio and Kubernetes config files, with istioctl analyze's "
                "messages."),
    "validate": ("remora.cli.analyze",
                 "Validate resources against the schema only; one line per problem."),
    "proxy": ("remora.cli.proxy",
              "Run a proxy: sidecar (outbound 15001, inbound 15006) or gateway (Gateway "
              "servers)."),
    "proxy-status": ("remora.cli.proxystatus",
                     "One row per connected proxy: versions sent and acknowledged, SYNCED or "
                     "STALE, and the\nresources it skipped (they did not compile for it; "
                     "everything else was applied)."),
    "proxy-config": ("remora.cli.proxyconfig",
                     "Show what one proxy runs, as istioctl proxy-config does: routes, clusters, "
                     "endpoints, listeners, secret."),
    "authn": ("remora.cli.authn", "Mutual TLS between workloads, as istioctl authn shows it."),
    "controlplane": ("remora.cli.controlplane",
                     "Run the control plane: resources, registry and config center behind one "
                     "HTTP API."),
    "server": ("remora.cli.controlplane", "Alias of `remora controlplane`."),
    "apply": ("remora.cli.kubectl", "Create or update resources from files (kubectl apply -f)."),
    "get": ("remora.cli.kubectl", "Show resources as a table, YAML or JSON (kubectl get)."),
    "describe": ("remora.cli.describe",
                 "Show details of resources and pods, with the rules that apply (kubectl "
                 "describe)."),
    "delete": ("remora.cli.kubectl",
               "Delete resources by kind and names, or those a file describes (kubectl delete)."),
    "services": ("remora.cli.registry",
                 "Services of the registry with their instance counts (Nacos /ns/service/list)."),
    "instances": ("remora.cli.registry", "Instances of a service (Nacos /ns/instance/list)."),
    "up": ("remora.cli.up",
           "Run the workloads of the YAML as local processes, each with a sidecar, in one mesh."),
    "down": ("remora.cli.up",
             "Stop everything `remora up` started: apps, sidecars, gateways, control plane."),
    "status": ("remora.cli.up",
               "Instances and gateways: ready, restarts, last exit, req/s, 5xx answered, ports."),
    "logs": ("remora.cli.up",
             "Print a process's output (the app's, or its sidecar's with -c istio-proxy)."),
    "exec": ("remora.cli.up", "Run a command in a pod, as `kubectl exec POD -- CMD`."),
    "load": ("remora.cli.load",
             "Send --rps requests per second to URL for --duration seconds, then summarize "
             "them."),
    "version": (__name__, "Print Remora's version."),
    "config": ("remora.cli.registry", "Configs of the config center (Nacos-compatible)."),
    "auth": ("remora.cli.auth", "Log in; users, roles and permissions of the control plane."),
    "identity": ("remora.cli.identity", "Join tokens for proxies and the roots of the mesh's CA."),
}
"""Top-level command -> (module whose `register(app)` defines it, its one-line help)."""


class LazyCommand(typer.core.TyperCommand):
    """What `remora --help` lists for a command whose module is not imported yet."""

    def __init__(self, name: str, module: str, help_text: str) -> None:
        super().__init__(name=name, help=help_text)
        self.module = module

    def invoke(self, ctx: Any) -> Any:  # LazyGroup.resolve_command replaces it first
        raise RuntimeError(f"{self.name}: {self.module} was not loaded")


class LazyGroup(TyperGroup):
    """A typer group that imports a command's module when the command is resolved."""

    def __init__(self, *, commands: dict[str, Any] | None = None, **attrs: Any) -> None:
        eager = dict(commands or {})
        table: dict[str, Any] = {
            name: eager.pop(name, None) or LazyCommand(name, module, help_text)
            for name, (module, help_text) in COMMANDS.items()
        }
        super().__init__(commands={**table, **eager}, **attrs)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, LazyCommand):
            self.load(command.module)
            command = self.commands[command.name or ""]
        return name, command, rest

    def load(self, module_name: str) -> None:
        """Import `module_name` and put the real commands it registers in place of the lazy."""
        module = importlib.import_module(module_name)
        sub = typer.Typer()
        module.register(sub)
        self.commands.update(typer.main.get_group(sub).commands)


app = typer.Typer(
    name="remora",
    cls=LazyGroup,
    help="Remora: a service mesh that takes Istio's configuration API as it is.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _group() -> None:
    # Without a callback typer would make the app its one eager command instead of a group.
    pass


def version() -> None:
    """Print Remora's version."""
    typer.echo(f"remora {__version__}")


def register(app: typer.Typer) -> None:
    app.command("version")(version)


register(app)  # the one command cheap enough to register eagerly


def _print_error(text: str) -> None:
    from rich.console import Console  # noqa: PLC0415  (only when there is an error to print)

    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure becomes a one-line message and an exit status."""
    try:
        app(args=argv, prog_name="remora")  # typer reports usage errors itself, then exits 2
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_UNKNOWN_ERROR
        return EXIT_INCORRECT_USAGE if code == CLICK_USAGE_ERROR else code
    except KeyboardInterrupt:
        return 130
    except RemoraError as exc:
        _print_error(f"Error: {exc}")
        return EXIT_UNKNOWN_ERROR
    except Exception as exc:  # a bug: still one line, never a traceback
        _print_error(f"Error: internal error: {type(exc).__name__}: {exc}")
        return EXIT_UNKNOWN_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
