"""The hostile battery for bench/hostile.py: tests/e2e/test_proxy_smuggling.py's smuggling and
malformed-request attempts, sent to a front (remora or nginx) whose upstream records what it
reads (tests/e2e/meshkit.py's RecordingUpstream, framing by RFC 9112); a tally of what got
through.

Each attempt hides `GET /smuggled` behind a first request. `reached`: /smuggled reached the
upstream. `smuggled`: it did, and the client read fewer responses than the upstream read
requests, so the front did not see it as a request of its own (a desync), where a front that
framed it as a pipelined request and answered it is only `reached`.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.*

from tests.e2e.meshkit import RecordingUpstream, read_response, send_and_read
from tests.e2e.test_proxy_smuggling import ATTEMPTS, HOST

SMUGGLED_TARGET = "/smuggled"


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the first response's, None when the front closed without one
    responses: int  # responses the client read
    upstream_targets: tuple[str, ...]  # requests the upstream read

    @property
    def reached(self) -> bool:
        return SMUGGLED_TARGET in self.upstream_targets

    @property
    def smuggled(self) -> bool:
        return self.reached and self.responses < len(self.upstream_targets)


def responses(answer: bytes) -> list[int]:
    """The statuses of the responses in what a client read (until the bytes stop parsing)."""
    reader = io.BytesIO(answer)
    statuses = []
    while True:
        try:
            statuses.append(read_response(reader).status)
        except (ConnectionError, ValueError, IndexError):
            return statuses


def run_attempts(upstream: RecordingUpstream, port: int, *, host: str) -> dict[str, Outcome]:
    """Every attempt against the front on `port` (in front of `upstream`), its Host rewritten
    to `host` (the front's route)."""
    recording = upstream.recording
    outcomes = {}
    for name, attempt in ATTEMPTS.items():
        mark = recording.mark()
        answer = send_and_read(port, attempt.replace(HOST, host).encode("latin-1"))
        statuses = responses(answer)
        outcomes[name] = Outcome(statuses[0] if statuses else None, len(statuses),
                                 tuple(recording.targets_since(mark)))  # fmt: skip
    return outcomes
