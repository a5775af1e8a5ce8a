"""wrk with request headers of its own and the bytes it read, for the proxy benchmark's gzip rows.

bench/_wrk.py sends only a Host header and does not report what it read; the heavier chain
needs `-H 'Accept-Encoding: gzip'` and the header its route matches, and the benchmark must show
that the answers were compressed: bytes read per response well under the 4 KiB body.
(Folding `headers` and `bytes_read` into bench/_wrk.py would make this file unnecessary.)
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from _wrk import WRK, WrkResult

_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}  # wrk's, base 1024


@dataclass(frozen=True)
class WrkTransfer(WrkResult):
    bytes_read: float  # heads and bodies, as wrk counts them ("… MB read", 2 decimals)

    @property
    def bytes_per_response(self) -> float:
        return self.bytes_read / self.requests if self.requests else float("nan")


def run_wrk_headers(
    port: int, *, host: str, path: str, headers: Sequence[tuple[str, str]], connections: int,
    seconds: float,
) -> WrkTransfer:  # fmt: skip
    """One wrk run (1 thread) against 127.0.0.1:`port` with Host and `headers`."""
    argv = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-H", f"Host: {host}"]
    for name, value in headers:
        argv += ["-H", f"{name}: {value}"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in [^,]+, ([\d.]+)([KMGT]?B) read", text)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}{out.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkTransfer(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        bytes_read=float(total.group(2)) * _UNITS[total.group(3)],
    )
