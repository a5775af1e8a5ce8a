"""Authentication for the control plane: accounts and tokens together, and the first admin.

Auth is on unless `remora controlplane --no-auth` turns it off. On first start (no user in the
store) a global admin is created — `admin`, with the password from $REMORA_ADMIN_PASSWORD or a
random one — and its credentials are written to `<data-dir>/credentials.json` (mode 0600),
where the CLI finds them (remora.credentials). Nacos ships a well-known `nacos`/`nacos`
instead; a mesh reachable from a network should not start with a password everyone knows.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from remora.controlplane.access import Principal
from remora.controlplane.accounts import Accounts
from remora.controlplane.tokens import INVALID, TOKEN_TTL, TokenError, Tokens
from remora.credentials import FILE_NAME, Credentials, write_file
from remora.registry.store.base import Store

log = logging.getLogger("remora.controlplane")

ADMIN_USER = "admin"
UNKNOWN_USER = "user not found!"


@dataclass
class Auth:
    accounts: Accounts
    tokens: Tokens

    @classmethod
    async def open(cls, store: Store, *, ttl: int = TOKEN_TTL) -> Auth:
        accounts = Accounts(store)
        await accounts.start()
        return cls(accounts, await Tokens.open(store, ttl=ttl))

    async def close(self) -> None:
        await self.accounts.close()

    async def login(self, username: str, password: str) -> str | None:
        """A token for the user, or None when the name or password is wrong."""
        principal = await self.accounts.authenticate(username, password)
        return None if principal is None else self.tokens.issue(username)

    def principal(self, token: str) -> Principal:
        """Who holds `token`; TokenError (Nacos's reason) when nobody valid does."""
        if not token:
            raise TokenError(UNKNOWN_USER)
        principal = self.accounts.principal(self.tokens.username(token))
        if principal is None:  # the user was deleted after the token was issued
            raise TokenError(INVALID)
        return principal

    async def bootstrap(self, *, data_dir: Path, server: str, password: str = "") -> Path | None:
        """The first admin and its credentials file, when the store has no user yet."""
        password = password or secrets.token_urlsafe(18)
        if not await self.accounts.ensure_admin(ADMIN_USER, password):
            return None
        path = data_dir / FILE_NAME
        write_file(path, Credentials(server, ADMIN_USER, password))
        log.info("created the global admin %r; its credentials are in %s", ADMIN_USER, path)
        return path
