"""`remora auth`: log in, and manage users, roles and permissions (Nacos's auth API).

    remora auth login -u alice               # asks for the password; keeps a token in ~/.remora
    remora auth token                        # a token for curl: -H "Authorization: Bearer ..."
    remora auth users create alice --password ...
    remora auth roles add dev alice
    remora auth permissions add dev 'public:*:*' rw
    remora auth permissions add dev 'default:networking.istio.io:*' rw

Resources are Nacos's `namespace:group:type/name` patterns (`*` matches anything); see
docs/controlplane.md#security for the names of Remora's own APIs.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from remora.cli.kubectl import DEFAULT_SERVER, Client, Server
from remora.cli.output import OutputFormat, render
from remora.credentials import Credentials, TokenSource, login, remember

Output = Annotated[str, typer.Option("-o", "--output", help="table, json or yaml.")]

auth_app = typer.Typer(help="Log in; users, roles and permissions of the control plane.",
                       no_args_is_help=True)
users_app = typer.Typer(help="Users (global admins only).", no_args_is_help=True)
roles_app = typer.Typer(help="Which users have which roles.", no_args_is_help=True)
permissions_app = typer.Typer(help="What each role may read (r) or write (w).",
                              no_args_is_help=True)
auth_app.add_typer(users_app, name="users")
auth_app.add_typer(roles_app, name="roles")
auth_app.add_typer(permissions_app, name="permissions")


def register(app: typer.Typer) -> None:
    app.add_typer(auth_app, name="auth")


@auth_app.command("login")
def login_command(
    username: Annotated[str, typer.Option("-u", "--username", prompt=True)],
    password: Annotated[str, typer.Option("-p", "--password", prompt=True, hide_input=True,
                                          envvar="REMORA_PASSWORD")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """Log in and keep the token (not the password) for SERVER in ~/.remora/credentials.json."""
    token, ttl = login(server, username, password)
    path = remember(Credentials(server, username, token=token))
    typer.echo(f"Logged in to {server} as {username} (token valid {ttl / 3600:g} h, kept in "
               f"{path})")


@auth_app.command("token")
def token_command(server: Server = DEFAULT_SERVER) -> None:
    """Print a token for SERVER from the credentials found for it."""
    token = TokenSource.for_server(server).token()
    if not token:
        raise typer.BadParameter(f"no credentials for {server}: run `remora auth login`")
    typer.echo(token)


def _call(server: str, method: str, path: str, params: dict[str, str]) -> Any:
    return Client(server).call(method, f"/nacos/v1/auth/{path}", params=params)


def _done(answer: Any) -> None:
    typer.echo(answer.get("message", "ok") if isinstance(answer, dict) else answer)


def _show(server: str, path: str, params: dict[str, str], columns: list[str],
          output: str) -> None:
    items = _call(server, "GET", path, {**params, "pageSize": "1000"}).get("pageItems", [])
    if output in (OutputFormat.JSON.value, OutputFormat.YAML.value):
        typer.echo(render(items, OutputFormat(output)), nl=False)
        return
    if output != "table":
        raise typer.BadParameter("table, json or yaml", param_hint="-o")
    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column.upper())
    for item in items:
        table.add_row(*(str(item.get(column, "")) for column in columns))
    Console(width=160).print(table)


@users_app.command("list")
def users_list(server: Server = DEFAULT_SERVER, output: Output = "table") -> None:
    """Every user."""
    _show(server, "users", {}, ["username"], output)


@users_app.command("create")
def users_create(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)],
    server: Server = DEFAULT_SERVER,
) -> None:
    """Create a user (no role yet: it may do nothing until given one)."""
    _done(_call(server, "POST", "users", {"username": username, "password": password}))


@users_app.command("passwd")
def users_passwd(
    username: str,
    password: Annotated[str, typer.Option(prompt="New password", hide_input=True,
                                          confirmation_prompt=True)],
    server: Server = DEFAULT_SERVER,
) -> None:
    """Set a user's password."""
    _done(_call(server, "PUT", "users", {"username": username, "newPassword": password}))


@users_app.command("delete")
def users_delete(username: str, server: Server = DEFAULT_SERVER) -> None:
    """Delete a user; its tokens stop working at once."""
    _done(_call(server, "DELETE", "users", {"username": username}))


@roles_app.command("list")
def roles_list(user: Annotated[str, typer.Option("--user", help="Only this user's.")] = "",
               server: Server = DEFAULT_SERVER, output: Output = "table") -> None:
    """Role bindings."""
    _show(server, "roles", {"username": user} if user else {}, ["role", "username"], output)


@roles_app.command("add")
def roles_add(role: str, username: str, server: Server = DEFAULT_SERVER) -> None:
    """Give USERNAME the ROLE (ROLE_ADMIN: a global admin)."""
    _done(_call(server, "POST", "roles", {"role": role, "username": username}))


@roles_app.command("remove")
def roles_remove(role: str, username: Annotated[str, typer.Argument()] = "",
                 server: Server = DEFAULT_SERVER) -> None:
    """Take ROLE from USERNAME (from everyone when no user is named)."""
    params = {"role": role, **({"username": username} if username else {})}
    _done(_call(server, "DELETE", "roles", params))


@permissions_app.command("list")
def permissions_list(role: Annotated[str, typer.Option("--role", help="Only this role's.")] = "",
                     server: Server = DEFAULT_SERVER, output: Output = "table") -> None:
    """Permissions of every role (or one)."""
    _show(server, "permissions", {"role": role} if role else {},
          ["role", "resource", "action"], output)


@permissions_app.command("add")
def permissions_add(role: str, resource: str, action: str,
                    server: Server = DEFAULT_SERVER) -> None:
    """Let ROLE do ACTION (r, w or rw) on RESOURCE (`namespace:group:type/name`, `*` wild)."""
    _done(_call(server, "POST", "permissions",
                {"role": role, "resource": resource, "action": action}))


@permissions_app.command("remove")
def permissions_remove(role: str, resource: str, action: str,
                       server: Server = DEFAULT_SERVER) -> None:
    """Revoke a permission."""
    _done(_call(server, "DELETE", "permissions",
                {"role": role, "resource": resource, "action": action}))
