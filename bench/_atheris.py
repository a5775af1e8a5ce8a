"""Coverage-guided fuzzing of the codec with atheris (libFuzzer, guided by the coverage of the
codec's Python bytecode; llhttp itself is C and not instrumented), run by bench/fuzz.py
--atheris as a child process, since libFuzzer exits the process when it is done:

    .venv/bin/python bench/_atheris.py request|response RUNS CORPUS_DIR ARTIFACT_DIR

An input is a flags byte, a count n, n 16-bit cuts, then the stream. The checks are those of
the mutation engine's codec targets (tests/unit/proxy/fuzzkit.py). A broken invariant is
written to ARTIFACT_DIR/<target>-<signature>.json the first time it is seen, and the run goes
on (libFuzzer would stop at its first crash); any other exception is a crash, which libFuzzer
writes there itself. atheris is an optional extra: `pip install -e '.[fuzz]'`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.*

METHODS = ("GET", "HEAD", "POST")


def encode(flags: int, cuts: tuple[int, ...], data: bytes) -> bytes:
    """An input in this format (for the seed corpus bench/fuzz.py writes)."""
    cuts = cuts[:8]
    return bytes([flags & 0xFF, len(cuts)]) + b"".join(
        (c & 0xFFFF).to_bytes(2, "big") for c in cuts) + data


def parse(raw: bytes) -> tuple[int, tuple[int, ...], bytes]:
    flags, count = (raw[0], raw[1] % 9) if len(raw) >= 2 else (0, 0)
    cuts = tuple(int.from_bytes(raw[2 + 2 * i:4 + 2 * i], "big") for i in range(count))
    return flags, cuts, raw[2 + 2 * count:]


def main(argv: list[str]) -> None:
    import atheris  # noqa: PLC0415 - optional: only this child needs it

    with atheris.instrument_imports(include=["remora.proxy.codec"]):
        from tests.unit.proxy import fuzzkit  # noqa: PLC0415 - imported under instrumentation

    target, runs, corpus, artifacts = argv[1:5]
    seen: set[str] = set()

    def case(raw: bytes) -> fuzzkit.RequestCase | fuzzkit.ResponseCase:
        flags, cuts, data = parse(raw)
        if target == "request":
            return fuzzkit.RequestCase(data, cuts, bool(flags & 1), bool(flags & 2))
        methods = tuple(METHODS[(flags >> (2 * i + 2)) % 3] for i in range(1 + flags % 3))
        return fuzzkit.ResponseCase(methods, (data,), cuts, eof=bool(flags & 0x80))

    def one(raw: bytes) -> None:
        found = case(raw)
        try:
            if isinstance(found, fuzzkit.RequestCase):
                fuzzkit.check_request_case(found)
            else:
                fuzzkit.check_response_case(found)
        except fuzzkit.InvariantError as error:
            signature = str(error).split(":", maxsplit=1)[0]
            if signature not in seen:
                seen.add(signature)
                name = "".join(c if c.isalnum() else "-" for c in signature)
                Path(artifacts, f"{target}-{name}.json").write_text(json.dumps(
                    {"target": target, "signature": signature, "message": str(error),
                     "input": raw.decode("latin-1"), "case": repr(found)}, indent=1))

    atheris.Setup([argv[0], f"-runs={runs}", "-max_len=4096", "-timeout=10",
                   f"-artifact_prefix={artifacts}/", "-print_final_stats=1", corpus], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
