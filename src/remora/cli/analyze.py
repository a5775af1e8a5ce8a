"""`remora analyze` and `remora validate`: check mesh config offline, as istioctl does."""

from __future__ import annotations

import dataclasses
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from remora.analysis.messages import Level, Message
from remora.api.errors import ConfigIssue
from remora.api.loader import LoadResult, load_paths
from remora.api.resource import DEFAULT_NAMESPACE
from remora.cli.output import OutputFormat, render

if TYPE_CHECKING:
    from remora.analysis.unenforced import MeshFile

# Exit codes as istioctl analyze uses them.
EXIT_DATA_ERROR = 65  # some files could not be parsed
EXIT_ANALYZER_FOUND_ISSUES = 79


class Threshold(StrEnum):
    """A message level, as istioctl's --failure-threshold / --output-threshold take it."""

    INFO = "Info"
    WARNING = "Warning"
    ERROR = "Error"

    @property
    def level(self) -> Level:
        return Level(self.value)


FilesOption = Annotated[
    list[str] | None,
    typer.Option(
        "-f", "--filename", help="File, directory (recursive) or - for stdin. Repeatable."
    ),
]
PathsArgument = Annotated[list[str] | None, typer.Argument(help="More files or directories.")]


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)
    app.command("validate")(validate)


def analyze(
    paths: PathsArgument = None,
    filename: FilesOption = None,
    namespace: Annotated[
        str, typer.Option("-n", "--namespace", help="Namespace to analyze and to load into.")
    ] = DEFAULT_NAMESPACE,
    all_namespaces: Annotated[
        bool, typer.Option("-A", "--all-namespaces", help="Analyze every namespace.")
    ] = False,
    output: Annotated[
        OutputFormat, typer.Option("-o", "--output", help="text, json or yaml.")
    ] = OutputFormat.TEXT,
    failure_threshold: Annotated[
        Threshold, typer.Option(help="Lowest message level that makes the exit status non-zero.")
    ] = Threshold.ERROR,
    output_threshold: Annotated[
        Threshold, typer.Option(help="Lowest message level to print.")
    ] = Threshold.INFO,
    mesh_config_file: Annotated[
        str | None, typer.Option("--meshConfigFile", "--mesh-config-file",
                                 help="MeshConfig YAML to analyze with (as istioctl takes it); "
                                      "default: ConfigMap istio-system/istio in the input.")
    ] = None,
    server: Annotated[str, typer.Option(
        "--server", "--controlplane", show_default=False,
        help="With no file: the control plane whose resources to analyze (default: the "
             "current mesh's, as `remora get` finds it).")] = "",
) -> None:
    """Find problems in Istio and Kubernetes config files, with istioctl analyze's messages.

    With no file, the resources of the running control plane are analyzed (istioctl analyze
    against the cluster); with files, those files alone (istioctl's --use-kube=false)."""
    if paths or filename:
        result = _load(paths, filename, namespace)
    else:
        from remora.cli.analyzelive import load_from  # noqa: PLC0415
        from remora.cli.kubectl import Client, find_server  # noqa: PLC0415

        result = load_from(Client(find_server(server)), namespace=namespace)
    mesh = _mesh_file(mesh_config_file) if mesh_config_file else None
    from remora.analysis import analyze as run_analyzers  # noqa: PLC0415 - heavy, only here

    messages = run_analyzers(result, namespace=None if all_namespaces else namespace, mesh=mesh)
    if not (paths or filename):  # stored objects: no file or line to point at, as istioctl
        messages = [dataclasses.replace(m, source=None) for m in messages]
    shown = [m for m in messages if m.type.level >= output_threshold.level]
    target = "all namespaces" if all_namespaces else f"namespace: {namespace}"
    unparsed = _print_parse_errors(result)
    if output is OutputFormat.TEXT:
        if shown or not unparsed:
            _print_messages(shown, target)
    else:
        typer.echo(render([m.to_dict() for m in shown], output), nl=False)
    if any(issue.subject == "" for issue in result.issues):
        raise typer.Exit(EXIT_DATA_ERROR)
    if any(m.type.level >= failure_threshold.level for m in messages):
        raise typer.Exit(EXIT_ANALYZER_FOUND_ISSUES)


def validate(
    paths: PathsArgument = None,
    filename: FilesOption = None,
    namespace: Annotated[
        str, typer.Option("-n", "--namespace", help="Namespace for objects that name none.")
    ] = DEFAULT_NAMESPACE,
) -> None:
    """Validate resources against the schema only; one line per problem."""
    result = _load(paths, filename, namespace)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for issue in result.issues:
        err.print(f"Error: {issue}", markup=False)
    for skipped in result.unsupported:
        note = f"{skipped.api_version} {skipped.kind} is not modelled; skipped"
        err.print(f"Info: {skipped.source}: {skipped.kind} {skipped.name}: {note}", markup=False)
    if result.issues:
        raise typer.Exit(1)
    count = len(result.resources)
    Console(highlight=False).print(f"[green]✔[/green] {count} resource{'s' * (count != 1)} valid")


def _load(paths: list[str] | None, filename: list[str] | None, namespace: str) -> LoadResult:
    sources = [*(filename or []), *(paths or [])]
    if not sources:
        raise typer.BadParameter("give at least one file, directory or - (stdin)",
                                 param_hint="'-f' / '--filename'")  # fmt: skip
    return load_paths(sources, namespace=namespace, stdin=sys.stdin)


def _mesh_file(path: str) -> MeshFile:
    """The --meshConfigFile; one line per problem (file:line, field path) and exit 65."""
    from remora.analysis.unenforced import MeshFile  # noqa: PLC0415 - heavy, only here
    from remora.api.errors import ConfigError  # noqa: PLC0415
    from remora.api.meshconfig import parse_mesh_config  # noqa: PLC0415

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        err.print(f"Error: {path}: cannot read mesh config file: {reason}", markup=False)
        raise typer.Exit(EXIT_DATA_ERROR) from None
    try:
        return MeshFile(parse_mesh_config(text, file=path), path)
    except ConfigError as exc:
        for issue in exc.issues:
            err.print(f"Error: {issue}", markup=False)
        err.print("Error: the mesh config file couldn't be parsed.", markup=False)
        raise typer.Exit(EXIT_DATA_ERROR) from None


def _print_parse_errors(result: LoadResult) -> bool:
    """Print the issues that belong to no resource (files not parsed); say if there were any."""
    unparsed: list[ConfigIssue] = [issue for issue in result.issues if issue.subject == ""]
    if not unparsed:
        return False
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for issue in unparsed:
        err.print(f"Error: {issue}", markup=False)
    err.print("Error: some files couldn't be parsed.", markup=False)
    return True


_LEVEL_STYLE = {Level.ERROR: "red", Level.WARNING: "yellow", Level.INFO: ""}


def _print_messages(messages: list[Message], target: str) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if not messages:
        console.print(f"[green]✔[/green] No validation issues found when analyzing {target}.")
        return
    for message in messages:
        style = _LEVEL_STYLE[message.type.level]
        line = str(message)
        if style and console.is_terminal:
            level = message.type.level.value
            console.print(f"[{style}]{level}[/{style}]", end="", markup=True)
            console.print(line[len(level) :], markup=False)
        else:
            console.print(line, markup=False)
