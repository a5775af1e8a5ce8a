"""Access tokens as Nacos issues them: a JWT (HS256) naming the user, valid `tokenTtl` seconds.

The signing key is generated on first start and kept in the store, so a token from one replica
is good on every other (Nacos asks for the same `token.secret.key` on every node). Checked
tokens are remembered until they expire: verifying a signature on every registration, beat and
list query would cost more than answering them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from remora.registry.store.base import ABSENT, ConflictError, Store

SECRET_KEY = "/auth/secret"
TOKEN_TTL = 18000  # nacos.core.auth.plugin.nacos.token.expire.seconds
ALGORITHM = "HS256"
MAX_CACHED = 100_000


class TokenError(Exception):
    """A token that cannot be used; `reason` is Nacos's wording."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


EXPIRED = "token expired!"
INVALID = "token invalid!"


@dataclass
class Tokens:
    """Issue and check tokens with one key."""

    key: bytes
    ttl: int = TOKEN_TTL
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._checked: dict[str, tuple[str, float]] = {}  # token -> (username, expiry)

    @classmethod
    async def open(cls, store: Store, *, ttl: int = TOKEN_TTL) -> Tokens:
        """Tokens signed with the store's key, created by the first replica to start."""
        entry = await store.get(SECRET_KEY)
        if entry is None:
            try:
                entry = await store.put(SECRET_KEY, secrets.token_hex(32).encode(),
                                        expected=ABSENT)
            except ConflictError:
                entry = await store.get(SECRET_KEY)
        assert entry is not None
        return cls(entry.value, ttl=ttl)

    def issue(self, username: str) -> str:
        return jwt.encode({"sub": username, "exp": int(self.clock()) + self.ttl},
                          self.key, algorithm=ALGORITHM)

    def username(self, token: str) -> str:
        """Whose token it is; TokenError when it is malformed, forged or expired."""
        now = self.clock()
        found = self._checked.get(token)
        if found is not None:
            if found[1] > now:
                return found[0]
            del self._checked[token]
            raise TokenError(EXPIRED)
        try:
            claims = jwt.decode(token, self.key, algorithms=[ALGORITHM],
                                options={"require": ["sub", "exp"], "verify_exp": False})
        except jwt.PyJWTError:
            raise TokenError(INVALID) from None
        username, expiry = claims["sub"], claims["exp"]
        if not isinstance(username, str) or not isinstance(expiry, int):
            raise TokenError(INVALID)
        if expiry <= now:
            raise TokenError(EXPIRED)
        if len(self._checked) >= MAX_CACHED:
            self._checked.clear()
        self._checked[token] = (username, expiry)
        return username
