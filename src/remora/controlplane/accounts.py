"""Users, roles and permissions, kept in the store so every control-plane replica shares them.

Nacos's model (its users / roles / permissions tables): a user has a bcrypt-hashed password; a
role is bound to users; a role holds permissions (resource pattern + action). Keys:

    /auth/users/<username>                       {"username", "password": bcrypt hash}
    /auth/roles/<role>/<username>                {"role", "username"}
    /auth/permissions/<role>/<resource>@<action> {"role", "resource", "action"}   (quoted)

Reads are served from memory; a watch on /auth/ reloads it, so a change made through one
replica reaches the others. bcrypt is slow on purpose (about 0.1 s per check at Nacos's
strength 10), so hashing runs in a thread and never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import quote

import bcrypt

from remora.controlplane.access import ADMIN_ROLE, Permission, Principal
from remora.errors import RemoraError
from remora.registry.store.base import ABSENT, CompactedError, ConflictError, Store
from remora.tasks import stop_tasks

log = logging.getLogger("remora.controlplane")

PREFIX = "/auth/"
USERS = "/auth/users/"
ROLES = "/auth/roles/"
PERMISSIONS = "/auth/permissions/"
BCRYPT_ROUNDS = 10  # Spring's BCryptPasswordEncoder default, which Nacos uses
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_PASSWORD = 72  # bcrypt reads no more than 72 bytes


class AccountError(RemoraError):
    """A user, role or permission request that cannot be done (status 400 / 404 / 409)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password_hash: str


def check_name(kind: str, value: str) -> str:
    if not NAME.match(value):
        raise AccountError(f"{kind} must be 1-64 letters, digits or _.@-, got {value!r}")
    return value


def hash_password(password: str) -> str:
    if not password:
        raise AccountError("password must not be empty")
    if len(password.encode()) > MAX_PASSWORD:
        raise AccountError(f"password must be at most {MAX_PASSWORD} bytes")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def password_matches(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:  # a malformed stored hash, or a password bcrypt refuses
        return False


class Accounts:
    """The users, roles and permissions of one store, cached in memory and kept fresh."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.users: dict[str, User] = {}
        self.roles: dict[str, set[str]] = {}  # username -> roles
        self.permissions: dict[str, list[Permission]] = {}  # role -> permissions
        self._principals: dict[str, Principal] = {}  # built once per change, asked per request
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        revision = await self._load()
        self._task = asyncio.get_running_loop().create_task(self._follow(revision))

    async def close(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])

    async def _load(self) -> int:
        entries, revision = await self.store.list(PREFIX)
        users: dict[str, User] = {}
        roles: dict[str, set[str]] = {}
        permissions: dict[str, list[Permission]] = {}
        for entry in entries:
            if not entry.key.startswith((USERS, ROLES, PERMISSIONS)):
                continue  # the token key (tokens.py)
            data = json.loads(entry.value)
            if entry.key.startswith(USERS):
                users[data["username"]] = User(data["username"], data["password"])
            elif entry.key.startswith(ROLES):
                roles.setdefault(data["username"], set()).add(data["role"])
            elif entry.key.startswith(PERMISSIONS):
                permissions.setdefault(data["role"], []).append(
                    Permission(data["role"], data["resource"], data["action"]))
        self.users, self.roles, self.permissions = users, roles, permissions
        self._principals = {}
        return revision

    async def _follow(self, since: int) -> None:
        while True:
            try:
                async for _ in self.store.watch(PREFIX, since=since):
                    since = await self._load()
                return
            except CompactedError:
                since = await self._load()

    # -- questions ------------------------------------------------------------------------------
    def principal(self, username: str) -> Principal | None:
        """The user with its roles and their permissions; None when there is no such user."""
        found = self._principals.get(username)
        if found is not None or username not in self.users:
            return found
        roles = frozenset(self.roles.get(username, ()))
        granted = tuple(p for role in sorted(roles) for p in self.permissions.get(role, ()))
        found = self._principals[username] = Principal(username, roles, granted)
        return found

    async def authenticate(self, username: str, password: str) -> Principal | None:
        user = self.users.get(username)
        if user is None or not await asyncio.to_thread(password_matches, password,
                                                       user.password_hash):
            return None
        return self.principal(username)

    # -- changes --------------------------------------------------------------------------------
    async def create_user(self, username: str, password: str) -> None:
        check_name("username", username)
        hashed = await asyncio.to_thread(hash_password, password)
        body = json.dumps({"username": username, "password": hashed}).encode()
        try:
            await self.store.put(USERS + username, body, expected=ABSENT)
        except ConflictError:
            raise AccountError(f"user '{username}' already exist!", status=409) from None
        await self._load()

    async def set_password(self, username: str, password: str) -> None:
        if username not in self.users:
            raise AccountError(f"user {username} not exist!", status=404)
        hashed = await asyncio.to_thread(hash_password, password)
        await self.store.put(USERS + username,
                             json.dumps({"username": username, "password": hashed}).encode())
        await self._load()

    async def delete_user(self, username: str) -> None:
        if ADMIN_ROLE in self.roles.get(username, ()) and self._admins() == {username}:
            raise AccountError("cannot delete the last global admin", status=409)
        if await self.store.delete(USERS + username) is None:
            raise AccountError(f"user {username} not exist!", status=404)
        for role in list(self.roles.get(username, ())):
            await self.store.delete(f"{ROLES}{role}/{username}")
        await self._load()

    async def bind_role(self, role: str, username: str) -> None:
        check_name("role", role)
        if username not in self.users:
            raise AccountError(f"user '{username}' not found!", status=404)
        await self.store.put(f"{ROLES}{role}/{username}",
                             json.dumps({"role": role, "username": username}).encode())
        await self._load()

    async def unbind_role(self, role: str, username: str | None = None) -> None:
        """Remove `role` from `username`, or from everyone when no user is named."""
        users = [username] if username else [u for u, rs in self.roles.items() if role in rs]
        if role == ADMIN_ROLE and self._admins() <= set(users):
            raise AccountError("cannot remove the last global admin", status=409)
        for user in users:
            await self.store.delete(f"{ROLES}{role}/{user}")
        await self._load()

    async def grant(self, permission: Permission) -> None:
        check_name("role", permission.role)
        body = json.dumps({"role": permission.role, "resource": permission.resource,
                           "action": permission.action}).encode()
        await self.store.put(_permission_key(permission), body)
        await self._load()

    async def revoke(self, permission: Permission) -> None:
        if await self.store.delete(_permission_key(permission)) is None:
            raise AccountError(f"permission {permission.resource} {permission.action} of role "
                               f"{permission.role} not exist!", status=404)
        await self._load()

    async def ensure_admin(self, username: str, password: str) -> bool:
        """Create the first global admin when there is no user at all; True when created."""
        if self.users:
            return False
        with contextlib.suppress(AccountError):  # another replica was first
            await self.create_user(username, password)
            await self.bind_role(ADMIN_ROLE, username)
            return True
        return False

    def _admins(self) -> set[str]:
        return {user for user, roles in self.roles.items() if ADMIN_ROLE in roles}


def _permission_key(permission: Permission) -> str:
    return (f"{PERMISSIONS}{permission.role}/"
            f"{quote(permission.resource, safe='')}@{permission.action}")
