"""What one worker of bench/fuzz.py does: the four targets, running a chunk of inputs, keeping
what broke, shrinking it, and writing it where `--replay` reads it back.

Targets: `request` and `response` are the codec alone (tests/unit/proxy/fuzzkit.py), `client`
and `upstream` the whole request path through a proxy on the in-memory transport, hostile from
either side (fuzzpath.py). A proxy is kept between inputs of a worker (compiling one costs more
than an input) once it has passed every check; one that failed is dropped, and a finding is
replayed on a fresh proxy before it is shrunk, so a reproduction never depends on an earlier
input.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from tests.unit.proxy import fuzzkit, fuzzpath
from tests.unit.proxy.fuzzkit import InvariantError, RequestCase, ResponseCase
from tests.unit.proxy.fuzzpath import ClientCase, UpstreamCase
from tests.unit.proxy.harness import ProxyHarness
from tests.unit.proxy.ledger import TimerLedger

from _mutate import Mutator, cuts
from remora.proxy.call import UpstreamCall
from remora.proxy.server import DownstreamConnection
from remora.proxy.stream import HttpStream

Case: TypeAlias = RequestCase | ResponseCase | ClientCase | UpstreamCase
SLOW = 2.0  # seconds: an input slower than this is reported (a hang shows as a stuck worker)
LEAK_EVERY = 2000  # proxy inputs between two counts of the live request objects (gc)
REQUEST_OBJECTS = (DownstreamConnection, HttpStream, UpstreamCall)


# -- running cases ------------------------------------------------------------------------
class Proxies:
    """The event loop and the proxies of one process; a proxy that passed is used again."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.kept: dict[str, tuple[ProxyHarness, TimerLedger]] = {}

    def run(self, yaml: str, drive: fuzzpath.Drive, case: Case, *, fresh: bool = False) -> str:
        return self.runner.run(self._run(yaml, drive, case, fresh=fresh))

    async def _run(self, yaml: str, drive: fuzzpath.Drive, case: Case, *, fresh: bool) -> str:
        kept = None if fresh else self.kept.pop(yaml, None)
        proxy, ledger = kept or fuzzpath.fresh(yaml)
        try:
            outcome = await drive(proxy, ledger, case)
        except BaseException:
            ledger.clear()  # the proxy is dropped: nothing of it may outlive this input
            raise
        fuzzpath.reuse(proxy, ledger)
        self.kept[yaml] = proxy, ledger
        return outcome

    def live_request_objects(self) -> str:
        """Objects of requests that ended and what holds the first (nothing should)."""
        gc.collect()
        live = [o for o in gc.get_objects() if isinstance(o, REQUEST_OBJECTS)]
        if not live:
            return ""
        count = Counter(type(o).__name__ for o in live)
        return f"{dict(count)}, the first held by {holders(live[0])}"


def holders(thing: object, depth: int = 4) -> str:
    """A chain of the objects that refer to `thing` (the first of each kind), to its root."""
    chain = []
    seen = {id(thing)}
    for _ in range(depth):
        refs = [r for r in gc.get_referrers(thing) if id(r) not in seen
                and not isinstance(r, list | type(gc.get_referrers))]
        if not refs:
            break
        thing = refs[0]
        seen.add(id(thing))
        chain.append(type(thing).__qualname__)
    return " <- ".join(chain) or "nothing found"


@dataclass(frozen=True)
class Target:
    name: str
    cases: st.SearchStrategy[Any]  # the structured inputs (Hypothesis)
    make: Callable[[random.Random, Mutator, Mutator], Case]  # the bulk (mutations)
    check: Callable[[Proxies, Case, bool], str]  # -> outcome; raises on a finding
    proxy: bool


def _request(rng: random.Random, requests: Mutator, responses: Mutator) -> Case:
    data = requests.data(rng)
    return RequestCase(data, cuts(rng, data), rng.random() < 0.7, rng.random() < 0.1)


def _response(rng: random.Random, requests: Mutator, responses: Mutator) -> Case:
    count = rng.randint(1, 3)
    data = tuple(responses.data(rng, most=1) for _ in range(count))
    methods = tuple(rng.choice(fuzzkit.METHODS) for _ in range(count))
    return ResponseCase(methods, data, cuts(rng, b"".join(data)), rng.random() < 0.5)


def _client(rng: random.Random, requests: Mutator, responses: Mutator) -> Case:
    data = requests.data(rng)
    return ClientCase(data, cuts(rng, data), rng.random() < 0.7)


def _upstream(rng: random.Random, requests: Mutator, responses: Mutator) -> Case:
    chosen = tuple(rng.randrange(len(fuzzpath.CLIENT_REQUESTS)) for _ in range(rng.randint(1, 2)))
    data = responses.data(rng, most=2)
    return UpstreamCase(chosen, data, cuts(rng, data), rng.random() < 0.5, rng.random() < 0.3)


def _check_request(proxies: Proxies, case: Case, fresh: bool) -> str:
    assert isinstance(case, RequestCase)
    return fuzzkit.check_request_case(case)


def _check_response(proxies: Proxies, case: Case, fresh: bool) -> str:
    assert isinstance(case, ResponseCase)
    return fuzzkit.check_response_case(case)


def _check_client(proxies: Proxies, case: Case, fresh: bool) -> str:
    return proxies.run(fuzzpath.REVIEWS, fuzzpath.client_case, case, fresh=fresh)


def _check_upstream(proxies: Proxies, case: Case, fresh: bool) -> str:
    return proxies.run(fuzzpath.RETRYING, fuzzpath.upstream_case, case, fresh=fresh)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("request", fuzzkit.request_cases, _request, _check_request, proxy=False),
    Target("response", fuzzkit.response_cases, _response, _check_response, proxy=False),
    Target("client", fuzzpath.client_cases, _client, _check_client, proxy=True),
    Target("upstream", fuzzpath.upstream_cases, _upstream, _check_upstream, proxy=True),
)}


# -- findings -----------------------------------------------------------------------------
@dataclass
class Finding:
    target: str
    signature: str  # what broke, without the details of this input
    message: str
    case: Case | None  # None: found by a count over many inputs (a leak)
    index: int  # of the input (-1: from the Hypothesis phase)
    count: int = 1


def signature(exc: BaseException) -> tuple[str, str]:
    """(signature, message) of what an input raised."""
    if isinstance(exc, InvariantError):
        text = str(exc)
        return text.split(":", maxsplit=1)[0], text
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if "/remora/" in f.filename] or frames
    where = f"{Path(inside[-1].filename).name}:{inside[-1].lineno}" if inside else "?"
    return (f"exception escaped: {type(exc).__name__} at {where}",
            "".join(traceback.format_exception(exc)))


def outcome_of(target: Target, proxies: Proxies, case: Case, *, fresh: bool = True) -> str:
    """The check's outcome, or the signature of what broke ("!" first)."""
    try:
        return target.check(proxies, case, fresh)
    except Exception as exc:  # anything that escapes is a finding
        return "!" + signature(exc)[0]


# -- a chunk of inputs --------------------------------------------------------------------
@dataclass
class Chunk:
    target: str
    first: int
    count: int
    coverage: str | None = None  # a data file: run these inputs under coverage


@dataclass
class ChunkResult:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)
    corpus: list[Case] = field(default_factory=list)  # the Hypothesis phase's inputs

    def run_one(self, target: Target, proxies: Proxies, case: Case, index: int) -> None:
        started = time.perf_counter()
        try:
            outcome = target.check(proxies, case, False)
        except Exception as exc:  # anything that escapes is a finding
            self.found(Finding(target.name, *signature(exc), case, index))
            outcome = "finding"
        took = time.perf_counter() - started
        if took > SLOW:
            self.found(Finding(target.name, f"an input took over {SLOW:g} s",
                               f"{took:.1f} s", case, index))
        self.outcomes[outcome] += 1
        self.inputs += 1

    def found(self, finding: Finding) -> None:
        known = self.findings.get(finding.signature)
        if known is None:
            self.findings[finding.signature] = finding
        else:
            known.count += 1

    def merge(self, other: ChunkResult) -> None:
        self.inputs += other.inputs
        self.seconds += other.seconds
        self.outcomes.update(other.outcomes)
        self.corpus += other.corpus
        for sig, finding in other.findings.items():
            known = self.findings.get(sig)
            if known is None:
                self.findings[sig] = finding
            else:
                known.count += finding.count
                if finding.index < known.index:
                    known.case, known.index, known.message = (finding.case, finding.index,
                                                              finding.message)


class Worker:
    """The state of one worker process: the corpora, the run's seed and the proxies."""

    current: Worker | None = None

    def __init__(self, seed: int, corpora: tuple[list[bytes], list[bytes]] | None) -> None:
        self.seed = seed
        self.mutators = (Mutator(corpora[0]), Mutator(corpora[1])) if corpora else None
        self.proxies = Proxies()
        self.since_count = 0

    def rng(self, target: str, index: int) -> random.Random:
        return random.Random(f"{self.seed}/{target}/{index}")

    def chunk(self, chunk: Chunk) -> ChunkResult:
        target = TARGETS[chunk.target]
        assert self.mutators is not None
        result = ChunkResult(chunk.target)
        with measured(result, chunk.coverage):
            for index in range(chunk.first, chunk.first + chunk.count):
                case = target.make(self.rng(chunk.target, index), *self.mutators)
                result.run_one(target, self.proxies, case, index)
                if target.proxy:
                    self.count_leaks(result, target, index)
        return result

    def count_leaks(self, result: ChunkResult, target: Target, index: int) -> None:
        self.since_count += 1
        if self.since_count < LEAK_EVERY:
            return
        self.since_count = 0
        live = self.proxies.live_request_objects()
        if live:
            result.found(Finding(target.name, "objects of ended requests still alive",
                                 f"{live} after input {index}", None, index))

    def explore(self, name: str, examples: int, coverage: str | None) -> ChunkResult:
        """The Hypothesis phase: structured inputs, each checked and kept as corpus."""
        target = TARGETS[name]
        result = ChunkResult(name)

        @hypothesis_seed(self.seed)
        @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=target.cases)
        def run(case: Case) -> None:
            result.run_one(target, self.proxies, case, -1)
            result.corpus.append(case)

        with measured(result, coverage):
            run()
        return result


class measured:  # noqa: N801 - a context manager used as a statement
    """Time a chunk into its result, under coverage when given a data file."""

    def __init__(self, result: ChunkResult, coverage: str | None) -> None:
        self.result = result
        self.coverage = None
        if coverage is not None:
            import coverage as coverage_py  # noqa: PLC0415 - only the sampled chunks need it

            self.coverage = coverage_py.Coverage(data_file=coverage, branch=True,
                                                 include=[COVERED], config_file=False)

    def __enter__(self) -> None:
        if self.coverage is not None:
            self.coverage.start()
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.result.seconds += time.perf_counter() - self.started
        if self.coverage is not None:
            self.coverage.stop()
            self.coverage.save()


COVERED = str(Path(__file__).resolve().parents[1] / "src" / "remora" / "proxy" / "*")


def start_worker(seed: int, corpora: tuple[list[bytes], list[bytes]] | None) -> None:
    Worker.current = Worker(seed, corpora)


def run_chunk(chunk: Chunk) -> ChunkResult:
    assert Worker.current is not None
    return Worker.current.chunk(chunk)


def run_explore(job: tuple[str, int, str | None]) -> ChunkResult:
    assert Worker.current is not None
    return Worker.current.explore(*job)


def corpora(results: list[ChunkResult]) -> tuple[list[bytes], list[bytes]]:
    """Request and response bytes from the Hypothesis phase's inputs."""
    requests: list[bytes] = []
    responses: list[bytes] = []
    for result in results:
        for case in result.corpus:
            if isinstance(case, RequestCase | ClientCase):
                requests.append(case.data)
            elif isinstance(case, ResponseCase):
                responses.extend(case.data)
            else:
                responses.append(case.data)
    return requests, responses


# -- shrinking and saving -----------------------------------------------------------------
def _shorter(value: bytes) -> Iterator[bytes]:
    """`value` without one of its halves, quarters, ... single bytes."""
    size = len(value) // 2
    while size:
        for at in range(0, len(value), size):
            yield value[:at] + value[at + size:]
        size //= 2


def smaller(case: Case) -> Iterator[Case]:
    """Candidates smaller than `case`: fewer cuts, exchanges or requests, less data, flags off."""
    def changed(**fields: Any) -> Case:
        return dataclasses.replace(case, **fields)

    for f in dataclasses.fields(case):
        value = getattr(case, f.name)
        if isinstance(value, bool) and value:
            yield changed(**{f.name: False})
        elif isinstance(value, bytes):
            for less in _shorter(value):
                yield changed(**{f.name: less})
        elif isinstance(value, tuple) and value and f.name != "methods":
            if f.name == "cuts":
                half = len(value) // 2
                yield from (changed(cuts=c) for c in ((), value[:half], value[half:]) if c != value)
            for at in range(len(value)):
                fewer = {f.name: value[:at] + value[at + 1:]}
                if isinstance(case, ResponseCase) and f.name == "data":  # with its method
                    fewer["methods"] = case.methods[:at] + case.methods[at + 1:]
                yield changed(**fewer)
            if isinstance(case, ResponseCase) and f.name == "data":
                for at, piece in enumerate(value):
                    for less in _shorter(piece):
                        yield changed(data=(*value[:at], less, *value[at + 1:]))


def shrink(target: Target, proxies: Proxies, case: Case, wanted: str,
           tries: int = 2000) -> Case:
    """The smallest case found within `tries` runs that still breaks the way `wanted` says
    (each on a fresh proxy)."""
    improved = True
    while improved and tries > 0:
        improved = False
        for candidate in smaller(case):
            tries -= 1
            if outcome_of(target, proxies, candidate) == wanted:
                case, improved = candidate, True
                break
            if tries <= 0:
                break
    return case


def encode(case: Case) -> dict[str, Any]:
    """A case as JSON: bytes as latin-1 text (exact, and readable)."""
    def one(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, tuple):
            return [one(v) for v in value]
        return value

    return {"type": type(case).__name__,
            **{f.name: one(getattr(case, f.name)) for f in dataclasses.fields(case)}}


CASE_TYPES: dict[str, type[Case]] = {c.__name__: c for c in (RequestCase, ResponseCase,
                                                             ClientCase, UpstreamCase)}


def decode(document: dict[str, Any]) -> Case:
    kind = CASE_TYPES[document["type"]]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        value = document[f.name]
        if f.type == "bytes":
            value = value.encode("latin-1")
        elif f.type == "tuple[bytes, ...]":
            value = tuple(v.encode("latin-1") for v in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return kind(**values)
