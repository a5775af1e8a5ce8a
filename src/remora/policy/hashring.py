"""Consistent-hash tables of Envoy: the ketama ring and Maglev, and the stable 64-bit key hash.

Hosts are placed by hashing their key (the endpoint address "ip:port", as Envoy does), never
their index, so removing one host leaves every other host's entries where they were.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections.abc import Sequence
from hashlib import blake2b

DEFAULT_MIN_RING_SIZE = 1024  # Envoy RingHashLbConfig.minimum_ring_size default
MAX_RING_SIZE = 8 * 1024 * 1024  # Envoy RingHashLbConfig.maximum_ring_size default and limit
DEFAULT_TABLE_SIZE = 65537  # Envoy MaglevLbConfig.table_size default
MAGLEV_TABLE_LIMIT = 5000011  # Envoy MaglevLbConfig.table_size: less than this (the api checks
# the same limit when it validates a DestinationRule: remora.api.networking.traffic_policy)

_UNPACK = struct.Struct("<Q").unpack
_SKIP_SALT = b"\x01"  # a second, independent hash for Maglev's skip (Envoy: xxHash64 seed 1)


def is_prime(value: int) -> bool:
    """Envoy's Primes::isPrime, which Istio copies for maglev tableSize (the api's validation
    has its own copy: it sits below this layer and the proxy must not import it)."""
    if 0 < value < 4:
        return True
    if value % 2 == 0:
        return False
    return all(value % f for f in range(3, math.isqrt(value) + 1, 2))


def hash_key(value: str | bytes) -> int:
    """Stable 64-bit hash of a request or host key, equal in every process.

    Envoy uses xxHash64, which the standard library lacks; BLAKE2b cut to 8 bytes is as well
    spread and still C-fast. Python's hash() is salted per process, so it would break affinity
    across restarts and between proxies.
    """
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return int(_UNPACK(blake2b(data, digest_size=8).digest())[0])


def _skip_hash(value: str) -> int:
    digest = blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8, salt=_SKIP_SALT)
    return int(_UNPACK(digest.digest())[0])


def _live_hosts(weights: Sequence[int], keys: Sequence[str]) -> list[tuple[str, int, int]]:
    """(key, index, weight) of the hosts that can be picked; at least one must exist."""
    if len(keys) != len(weights):
        raise ValueError(f"{len(weights)} weights but {len(keys)} host keys")
    live = [(keys[i], i, w) for i, w in enumerate(weights) if w > 0]
    if not live:
        raise ValueError("consistent hashing needs a host with a positive weight")
    return live


class RingHash:
    """Envoy's ring hash: each host hashed as "key_0", "key_1", ... some times per weight.

    The least-weighted host gets ceil(its share × minimum_ring_size) entries and the rest in
    proportion, the ring capped at maximum_ring_size; a request goes to the first entry
    clockwise from its hash (the first entry with a hash >= it, wrapping to the start).
    """

    __slots__ = ("hashes", "hosts")

    def __init__(
        self,
        weights: Sequence[int],
        keys: Sequence[str],
        *,
        minimum_ring_size: int = DEFAULT_MIN_RING_SIZE,
        maximum_ring_size: int = MAX_RING_SIZE,
    ) -> None:
        live = _live_hosts(weights, keys)
        total = sum(w for _, _, w in live)
        least = min(w for _, _, w in live) / total
        scale = min(math.ceil(least * minimum_ring_size) / least, float(maximum_ring_size))
        entries: list[tuple[int, int]] = []
        current = 0.0
        target = 0.0
        # Running sums across hosts, as in Envoy, so fractional shares add up to the ring size.
        for key, index, weight in live:
            target += scale * weight / total
            replica = 0
            while current < target:
                entries.append((hash_key(f"{key}_{replica}"), index))
                replica += 1
                current += 1
        entries.sort()
        self.hashes = [h for h, _ in entries]
        self.hosts = [i for _, i in entries]

    def host(self, hash_value: int) -> int:
        """Index of the host owning `hash_value`."""
        position = bisect_left(self.hashes, hash_value)
        return self.hosts[position if position < len(self.hosts) else 0]


class Maglev:
    """Maglev lookup table (Eisenbud et al. 2016, §3.4) with Envoy's weighting.

    Each host walks its own permutation of the table, offset = h1 % M and
    skip = h2 % (M − 1) + 1, claiming its next free slot in turn; a host of weight w takes a
    turn in w / max_weight of the rounds, so its share of the table follows its weight.
    Hosts are ordered by key first, so the table does not depend on the order given.
    """

    __slots__ = ("size", "table")

    def __init__(
        self, weights: Sequence[int], keys: Sequence[str], *, table_size: int = DEFAULT_TABLE_SIZE
    ) -> None:
        if not is_prime(table_size) or not 1 < table_size < MAGLEV_TABLE_LIMIT:
            raise ValueError(f"maglev table size must be a prime below {MAGLEV_TABLE_LIMIT}")
        live = sorted(_live_hosts(weights, keys))
        size = table_size
        hosts = [index for _, index, _ in live]
        host_weights = [weight for _, _, weight in live]
        heaviest = max(host_weights)
        slots = [hash_key(key) % size for key, _, _ in live]  # each host's next slot to try
        skips = [_skip_hash(key) % (size - 1) + 1 for key, _, _ in live]
        targets = [0] * len(live)
        table = [-1] * size
        filled = 0
        round_number = 0
        while filled < size:
            round_number += 1
            for j, weight in enumerate(host_weights):
                # Integer form of Envoy's `iteration * normalized_weight < target_weight`.
                if round_number * weight < targets[j]:
                    continue
                targets[j] += heaviest
                slot = slots[j]
                while table[slot] >= 0:
                    slot = (slot + skips[j]) % size
                table[slot] = hosts[j]
                slots[j] = (slot + skips[j]) % size
                filled += 1
                if filled == size:
                    break
        self.size = size
        self.table = table

    def host(self, hash_value: int) -> int:
        """Index of the host owning `hash_value`."""
        return self.table[hash_value % self.size]
