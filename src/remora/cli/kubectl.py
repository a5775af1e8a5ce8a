"""`remora apply | get | delete`: kubectl's verbs against a control plane's resource API.

The control plane is the current mesh's (remora.context: `--server`, $REMORA_CONTROLPLANE, the
running `remora up` of this directory, else http://127.0.0.1:8848). Output
follows kubectl: `virtualservice.networking.istio.io/reviews created`, tables with NAME and
AGE, `-o yaml|json` that can be applied again, `Error from server (NotFound): ...`. Exit
status 0 when everything worked, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import typer

from remora.cli import columns
from remora.cli.output import OutputFormat, render
from remora.context import current
from remora.controlplane.kindnames import ResourceType, by_kind, lookup
from remora.credentials import TokenSource
from remora.errors import RemoraError

DEFAULT_SERVER = ""
"""The `--server` a command gets when none is given: the current mesh's (see find_server)."""
TIMEOUT = 30.0


def find_server(value: str | None) -> str:
    """The control plane URL: the flag, else the current mesh's (remora.context)."""
    return current(value or None).server


Server = Annotated[str, typer.Option(
    "--server", "--controlplane", callback=find_server, show_default=False,
    help="The control plane's URL. Default: $REMORA_CONTROLPLANE, else the running "
         "`remora up` of this directory (or a parent), else http://127.0.0.1:8848.")]
Namespace = Annotated[str, typer.Option("-n", "--namespace", help="Namespace.")]
Files = Annotated[list[str] | None, typer.Option(
    "-f", "--filename", help="File, directory (recursive) or - for stdin. Repeatable.")]


class GetFormat(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    YAML = "yaml"
    JSON = "json"


class ServerError(RemoraError):
    """The control plane answered with a failure Status."""

    def __init__(self, code: int, body: Any) -> None:
        self.code = code
        self.body = body if isinstance(body, dict) else {}
        super().__init__(describe_status(code, self.body))


@dataclass(frozen=True)
class Client:
    """A thin JSON client of the control plane (stdlib only: the CLI needs nothing more).
    Requests carry a token from the credentials found for the server (remora.credentials);
    over https the server is verified against the mesh's root those credentials name."""

    server: str

    @cached_property
    def tokens(self) -> TokenSource:
        return TokenSource.for_server(self.server)

    def call(self, method: str, path: str, *, params: dict[str, str] | None = None,
             body: bytes | None = None, content_type: str = "application/json") -> Any:
        """The decoded JSON answer; ServerError for a failure status, RemoraError when the
        server cannot be reached."""
        raw = self.call_raw(method, path, params=params, body=body, content_type=content_type)
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise RemoraError(f"{self.server} did not answer with JSON: {exc}") from None

    def call_raw(self, method: str, path: str, *, params: dict[str, str] | None = None,
                 body: bytes | None = None, content_type: str = "application/json",
                 headers: dict[str, str] | None = None, timeout: float = TIMEOUT) -> bytes:
        """The answer's bytes (Nacos answers plain text too); errors as `call`."""
        url = self.server.rstrip("/") + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        sent = {"Content-Type": content_type} if body else {}
        request = urllib.request.Request(url, data=body, method=method, headers={
            **sent, **self.tokens.headers(), **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout,
                                        context=self.tokens.tls_context()) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            body_json = _json_or_none(raw)
            if body_json is None:  # Nacos: a plain-text reason
                body_json = {"reason": f"HTTP {exc.code}", "message": raw.decode(errors="replace")}
            if exc.code in (401, 403) and self.tokens.credentials is None:
                body_json["message"] = f"{body_json.get('message', '')} (no credentials for " \
                    f"{self.server}: run `remora auth login`, or set REMORA_TOKEN or " \
                    "REMORA_CREDENTIALS)"
            raise ServerError(exc.code, body_json) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoraError(f"cannot reach the control plane at {self.server}: {reason} "
                              f"({unreachable_hint()})") from None


def unreachable_hint() -> str:
    """Why the control plane may not answer: a stopped `remora up` here, else the lookup."""
    from remora.context import stopped_up  # noqa: PLC0415

    stopped = stopped_up()
    if stopped is not None:
        return f"the `remora up` of {stopped} is not running: start it again, or see --server"
    return ("is `remora up` or `remora controlplane` running? the URL comes from --server, "
            "$REMORA_CONTROLPLANE, a running `remora up` in this directory, else :8848")


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def describe_status(code: int, status: dict[str, Any]) -> str:
    """kubectl's `Error from server (Reason): message`, then one line per field cause."""
    reason = status.get("reason") or f"HTTP {code}"
    lines = [f"Error from server ({reason}): {status.get('message', 'no details')}"]
    for cause in (status.get("details") or {}).get("causes") or []:
        field = cause.get("field")
        lines.append(f"  {field}: {cause.get('message')}" if field else f"  {cause.get('message')}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)
    app.command("get")(get)
    app.command("delete")(delete)


def apply(filename: Files = None, namespace: Namespace = "default",
          server: Server = DEFAULT_SERVER) -> None:
    """Create or update resources from files (kubectl apply -f)."""
    if not filename:
        raise typer.BadParameter("must specify -f", param_hint="-f")
    client = Client(server)
    failed = False
    for source, text in read_sources(filename):
        try:
            result = client.call("POST", "/api/remora/apply", params={"namespace": namespace},
                                 body=text.encode(), content_type="application/yaml")
        except ServerError as exc:
            failed = True
            items = exc.body.get("items")
            if not isinstance(items, list):  # nothing applied: the whole file was refused
                _err(f"{source}: {exc}")
                continue
            result = {"items": items}
        for item in result.get("items", []):
            failed |= not _print_applied(item)
    if failed:
        raise typer.Exit(1)


def _print_applied(item: dict[str, Any]) -> bool:
    if "error" in item:
        status = item["error"]
        _err(describe_status(status.get("code", 0), status))
        return False
    for warning in item.get("warnings") or []:
        _err(f"Warning: {warning}")
    typer.echo(f"{item['resource']}/{item['object']['metadata']['name']} {item['action']}")
    return True


def get(kind: Annotated[str, typer.Argument(
            help="Kind: vs, virtualservice(s), svc, pods, all, ...")],
        names: Annotated[list[str] | None, typer.Argument(help="Names (default: all).")] = None,
        namespace: Namespace = "default",
        all_namespaces: Annotated[bool, typer.Option("-A", "--all-namespaces")] = False,
        selector: Annotated[str, typer.Option("-l", "--selector", help="a=b,c!=d")] = "",
        output: Annotated[GetFormat, typer.Option("-o", "--output")] = GetFormat.TABLE,
        server: Server = DEFAULT_SERVER) -> None:
    """Show resources as a table, YAML or JSON (kubectl get)."""
    if kind.lower() in ("pods", "pod", "po", "all"):  # what runs, not what is stored
        from remora.cli import pods  # noqa: PLC0415

        if kind.lower() == "all":
            pods.get_all(Client(server), namespace=namespace, all_namespaces=all_namespaces,
                         output=output.value)
        else:
            pods.get_pods(Client(server), names or [], namespace=namespace,
                          all_namespaces=all_namespaces, output=output.value,
                          selector=selector)
        return
    rtype = resolve_kind(kind)
    client = Client(server)
    scope = None if all_namespaces else namespace
    base = rtype.collection_path(scope)
    if names:
        objects = [client.call("GET", _item_path(rtype, namespace, name)) for name in names]
    else:
        params = {"labelSelector": selector} if selector else None
        objects = client.call("GET", base, params=params)["items"]
    if output in (GetFormat.YAML, GetFormat.JSON):
        data = objects[0] if names and len(objects) == 1 else \
            {"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {}}
        typer.echo(render(data, OutputFormat(output.value)), nl=False)
        return
    if not objects:
        where = "" if not rtype.namespaced else \
            (" in any namespace" if all_namespaces else f" in {namespace} namespace")
        _err(f"No resources found{where}.")
        return
    print_table(rtype, objects, all_namespaces=all_namespaces and rtype.namespaced,
                wide=output is GetFormat.WIDE)


def delete(kind: Annotated[str | None, typer.Argument(help="Kind (or use -f).")] = None,
           names: Annotated[list[str] | None, typer.Argument(help="Names.")] = None,
           filename: Files = None, namespace: Namespace = "default",
           ignore_not_found: Annotated[bool, typer.Option("--ignore-not-found")] = False,
           server: Server = DEFAULT_SERVER) -> None:
    """Delete resources by kind and names, or those a file describes (kubectl delete)."""
    targets: list[tuple[ResourceType, str, str]] = []
    if filename:
        targets.extend(_targets_in(filename, namespace))
    elif kind and names:
        rtype = resolve_kind(kind)
        targets.extend((rtype, namespace, name) for name in names)
    else:
        raise typer.BadParameter("give KIND NAME... or -f FILE")
    client = Client(server)
    failed = False
    for rtype, ns, name in targets:
        try:
            client.call("DELETE", _item_path(rtype, ns, name))
        except ServerError as exc:
            if not (ignore_not_found and exc.code == 404):
                failed = True
                _err(str(exc))
            continue
        typer.echo(f'{rtype.qualified} "{name}" deleted')
    if failed:
        raise typer.Exit(1)


def resolve_kind(name: str) -> ResourceType:
    """The one type `name` means, else a kubectl-like error."""
    found = lookup(name)
    if not found:
        raise RemoraError(f'the server doesn\'t have a resource type "{name}"')
    if len(found) > 1:
        choices = ", ".join(f"{t.plural}.{t.group or 'core'}" for t in found)
        raise RemoraError(f'"{name}" is ambiguous: one of {choices}')
    return found[0]


def _item_path(rtype: ResourceType, namespace: str, name: str) -> str:
    return f"{rtype.collection_path(namespace)}/{urllib.parse.quote(name, safe='')}"


def read_sources(paths: list[str]) -> list[tuple[str, str]]:
    """(name, text) of each file named; directories recursively (.yaml, .yml, .json)."""
    from remora.api.loader import YAML_SUFFIXES  # noqa: PLC0415  (the models: apply -f only)

    out: list[tuple[str, str]] = []
    for raw in paths:
        if raw == "-":
            out.append(("-", sys.stdin.read()))
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES)
        elif path.exists():
            files = [path]
        else:
            raise RemoraError(f'the path "{raw}" does not exist')
        for file in files:
            try:
                out.append((str(file), file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise RemoraError(f"cannot read {file}: {exc}") from None
    return out


def _targets_in(paths: list[str], namespace: str) -> list[tuple[ResourceType, str, str]]:
    import yaml  # noqa: PLC0415  (delete -f only, as below)

    from remora.api.yamlaliases import AliasBombError  # noqa: PLC0415
    from remora.api.yamlsource import load_all  # noqa: PLC0415

    targets = []
    for source, text in read_sources(paths):
        try:
            documents = load_all(text)
        except yaml.YAMLError as exc:
            raise RemoraError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
        except AliasBombError as exc:
            raise RemoraError(f"{source}:{exc.line}: not valid YAML: {exc}") from None
        for document in documents:
            items = document.get("items") if isinstance(document, dict) and \
                document.get("kind") == "List" else [document]
            for item in items or []:
                targets.append(_target(source, item, namespace))
    return targets


def _target(source: str, document: Any, namespace: str) -> tuple[ResourceType, str, str]:
    if not isinstance(document, dict):
        raise RemoraError(f"{source}: expected Kubernetes objects")
    from remora.api.resource import split_api_version  # noqa: PLC0415  (pydantic models)

    group = split_api_version(str(document.get("apiVersion", "")))[0]
    rtype = by_kind(group, str(document.get("kind")))
    meta = document.get("metadata") or {}
    if rtype is None or not isinstance(meta, dict) or not meta.get("name"):
        raise RemoraError(f"{source}: cannot delete {document.get('kind')!r} objects without "
                          "a served kind and a metadata.name")
    return rtype, str(meta.get("namespace") or namespace), str(meta["name"])


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _join(values: Any) -> str:
    return ",".join(str(v) for v in values) if isinstance(values, list) and values else "<none>"


def _spec(obj: dict[str, Any], key: str) -> Any:
    spec = obj.get("spec")
    return spec.get(key) if isinstance(spec, dict) else None


def _ports(obj: dict[str, Any]) -> str:
    ports = _spec(obj, "ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports
                    if isinstance(p, dict)) or "<none>"


COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "VirtualService": [("GATEWAYS", lambda o: _join(_spec(o, "gateways"))),
                       ("HOSTS", lambda o: _join(_spec(o, "hosts")))],
    "DestinationRule": [("HOST", lambda o: _spec(o, "host") or "")],
    "ServiceEntry": [("HOSTS", lambda o: _join(_spec(o, "hosts"))),
                     ("LOCATION", lambda o: _spec(o, "location") or ""),
                     ("RESOLUTION", lambda o: _spec(o, "resolution") or "")],
    "Service": [("TYPE", lambda o: _spec(o, "type") or "ClusterIP"), ("PORT(S)", _ports)],
    "Namespace": [("STATUS", lambda o: "Active")],
    "Deployment": columns.DEPLOYMENT,
    "StatefulSet": columns.STATEFULSET,
    "HorizontalPodAutoscaler": columns.HPA,
    "ConfigMap": [("DATA", lambda o: str(len(o.get("data") or {})))],
}
"""The columns `kubectl get` shows for a kind, between NAME and AGE."""


def print_table(rtype: ResourceType, objects: list[dict[str, Any]], *, all_namespaces: bool,
                wide: bool, now: datetime | None = None) -> None:
    from remora.cli.pods import format_rows  # noqa: PLC0415  (kubectl's padding; no rich)

    headers = ["NAMESPACE"] if all_namespaces else []
    headers += ["NAME", *(h for h, _ in COLUMNS.get(rtype.kind, [])), "AGE"]
    if wide:
        headers += ["GENERATION", "LABELS"]
    rows = [headers]
    moment = now or datetime.now(UTC)
    for obj in objects:
        meta = obj.get("metadata", {})
        row = [meta.get("namespace", "")] if all_namespaces else []
        row += [meta.get("name", ""), *(str(f(obj)) for _, f in COLUMNS.get(rtype.kind, [])),
                age(meta.get("creationTimestamp"), moment)]
        if wide:
            labels = meta.get("labels") or {}
            row += [str(meta.get("generation", "")),
                    ",".join(f"{k}={v}" for k, v in labels.items()) or "<none>"]
        rows.append(row)
    typer.echo(format_rows(rows))


def age(timestamp: Any, now: datetime) -> str:
    """kubectl's AGE column (apimachinery duration.HumanDuration) of an RFC 3339 timestamp."""
    try:
        created = datetime.strptime(str(timestamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration(int((now - created).total_seconds()))


def human_duration(seconds: int) -> str:
    """2s, 5m3s, 3h, 4d2h, 1y20d as kubectl prints ages."""
    if seconds < 0:
        return "<invalid>"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _err(text: str) -> None:
    typer.echo(text, err=True)
