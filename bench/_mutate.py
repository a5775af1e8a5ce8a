"""The seeded mutation engine of bench/fuzz.py: cheap, reproducible variations of a corpus.

Each input comes from its own `random.Random`, seeded from (run seed, target, index), so one
index reproduces one input. An input is one or more corpus entries (pipelined), mutated one to
four times — a bit flipped, a byte set, an interesting token inserted (CR, LF, NUL, "chunked",
"Content-Length: ", huge or negative numbers, ...), a range dropped or repeated, a number
replaced, a line end mangled, the case of a range swapped, two entries spliced — then cut:
not at all, at every byte, at every CR/LF/colon, or at a few random points.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

TOKENS: tuple[bytes, ...] = (
    b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"\x7f",
    b"\x80", b"\xff", b"chunked", b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: ",
    b"Content-Length: ", b"Content-Length: 0\r\n", b"Content-Length: 5\r\n", b"0\r\n\r\n",
    b"5\r\nhello\r\n", b";ext=1", b"Connection: close\r\n", b"Connection: keep-alive\r\n",
    b"Connection: upgrade\r\nUpgrade: websocket\r\n", b"Expect: 100-continue\r\n",
    b"Host: reviews:9080\r\n", b"Host: other\r\n", b"Trailer: x\r\n", b"HTTP/1.1", b"HTTP/1.0",
    b"HTTP/2.0", b"HTTP/0.9", b"GET / HTTP/1.1\r\nHost: reviews:9080\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 100 Continue\r\n\r\n",
    b"http://reviews:9080/", b"/../", b"%00", b"%2e", b"*", b"CONNECT", b"\xef\xbb\xbf",
)
NUMBERS: tuple[bytes, ...] = (
    b"0", b"00", b"-1", b"+1", b"1 1", b"0x10", b"4294967296", b"9223372036854775808",
    b"18446744073709551616", b"99999999999999999999999", b"ffffffffffffffff", b"1.5", b" 3",
)
LINE_ENDS: tuple[bytes, ...] = (b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\r\n", b"\r\n ", b"")
_NUMBER = re.compile(rb"[0-9a-fA-F]+")

Mutation = Callable[[random.Random, bytearray, Sequence[bytes]], None]


def _flip(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _set_byte(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] = rng.choice(b"\r\n\x00 \t:;,\x7f\x80\xff") \
            if rng.random() < 0.5 else rng.randrange(256)


def _insert(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    at = rng.randint(0, len(data))
    data[at:at] = rng.choice(TOKENS)


def _drop(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        del data[at:at + rng.randint(1, 8)]


def _repeat(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        piece = data[at:at + rng.randint(1, 40)]
        data[at:at] = piece * rng.randint(1, 3)


def _number(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    found = list(_NUMBER.finditer(data))
    if found:
        match = rng.choice(found)
        data[match.start():match.end()] = rng.choice(NUMBERS)


def _line_end(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    ends = [m.start() for m in re.finditer(rb"\r\n", data)]
    if ends:
        at = rng.choice(ends)
        data[at:at + 2] = rng.choice(LINE_ENDS)


def _swap_case(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        end = at + rng.randint(1, 16)
        data[at:end] = bytes(data[at:end]).swapcase()


def _splice(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    other = rng.choice(corpus)
    data[rng.randint(0, len(data)):] = other[rng.randint(0, len(other)):]


def _truncate(rng: random.Random, data: bytearray, corpus: Sequence[bytes]) -> None:
    del data[rng.randint(0, len(data)):]


MUTATIONS: tuple[Mutation, ...] = (_flip, _set_byte, _insert, _insert, _drop, _repeat, _number,
                                   _number, _line_end, _swap_case, _splice, _truncate)


class Mutator:
    """Mutated inputs from one corpus (requests, or responses)."""

    def __init__(self, corpus: Sequence[bytes]) -> None:
        self.corpus = [c for c in corpus if c] or [b"\r\n"]

    def data(self, rng: random.Random, *, most: int = 3) -> bytes:
        """One to `most` corpus entries, mutated up to four times (an eighth not at all)."""
        data = bytearray(b"".join(rng.choice(self.corpus) for _ in range(rng.randint(1, most))))
        if rng.random() < 0.875:
            for _ in range(rng.randint(1, 4)):
                rng.choice(MUTATIONS)(rng, data, self.corpus)
        return bytes(data[:8192])


def cuts(rng: random.Random, data: bytes) -> tuple[int, ...]:
    """Where the input is cut into reads."""
    roll = rng.random()
    if roll < 0.15:
        return ()
    if roll < 0.25 and len(data) <= 400:
        return tuple(range(1, len(data)))  # every boundary: one byte per read
    if roll < 0.40:
        marks = [i + 1 for i, b in enumerate(data) if b in b"\r\n:"]
        if marks:
            return tuple(marks)
    return tuple(rng.randint(0, len(data)) for _ in range(rng.randint(1, 8)))
