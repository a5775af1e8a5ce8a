"""One request to a cluster as Envoy's router makes it: pick a host, get a connection within the
cluster's circuit breakers, time each try, retry with back-off, report to outlier detection.

The stream owns the client side; an `UpstreamCall` owns every try upstream and reports to the
stream through `CallSink`: the response to forward (`on_response_events`) or, when all tries
failed, the local reply Envoy would send (`upstream_failed`). The decisions themselves are pure
and live in remora.policy (retry, circuit, outlier); this module only applies them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from remora.policy.flags import ResponseFlag
from remora.policy.retry import AttemptResult, GiveUp, Retry, RetryPolicy
from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, ResponseHead
from remora.proxy.filter import LocalReply

if TYPE_CHECKING:
    import asyncio

    from remora.proxy.clusters import ClusterState
    from remora.proxy.env import ProxyEnv
    from remora.proxy.upstream import EndpointPool, UpstreamConnection

REPLAY_LIMIT = 1024 * 1024  # request body kept for retries (Envoy: per-request buffer limit)
UPSTREAM_RESET = "upstream connect error or disconnect/reset before headers. reset reason: "
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

ResponseEvent = ResponseHead | Data | EndOfMessage

# What a failed try becomes when it is the last one: status, flag, body, response details.
CONNECT_FAILURE = AttemptResult(connect_failure=True)
RESET = AttemptResult(reset=True)
TIMEOUT = AttemptResult(timeout=True)
OVERFLOW = AttemptResult(overflow=True)
_REPLIES = {
    CONNECT_FAILURE: (503, ResponseFlag.UF, UPSTREAM_RESET + "connection failure",
                      "upstream_reset_before_response_started{connection_failure}"),
    RESET: (503, ResponseFlag.UC, UPSTREAM_RESET + "connection termination",
            "upstream_reset_before_response_started{connection_termination}"),
    TIMEOUT: (504, ResponseFlag.UT, "upstream request timeout", "upstream_per_try_timeout"),
    OVERFLOW: (503, ResponseFlag.UO, UPSTREAM_RESET + "overflow", "upstream_overflow"),
}


class CallSink(Protocol):
    """What an upstream call reports to: the stream of the request it carries."""

    def on_host(self, state: ClusterState, host: int) -> None:
        """A host was picked for a try (telemetry reports the last one)."""
        ...

    def on_upstream_principal(self, principal: str) -> None:
        """The identity the try's connection proved in mutual TLS ("": plain text)."""
        ...

    def on_response_events(self, events: list[ResponseEvent]) -> None: ...

    def upstream_service(self, seconds: float) -> None:
        """The time from the request sent to the response head, of the try that answered."""
        ...

    def upstream_failed(self, reply: LocalReply) -> None:
        """Every try failed, or none could be made: answer the client with `reply`."""
        ...

    def upstream_cut(self, *, protocol_error: bool) -> None:
        """The upstream broke off a response already on its way to the client: it closed
        (Envoy's UC) or sent what is not HTTP (UPE)."""
        ...

    def add_flag(self, flag: ResponseFlag) -> None: ...

    def pause_request_body(self) -> None: ...

    def resume_request_body(self) -> None: ...


def failure_reply(result: AttemptResult, *, exhausted: bool) -> LocalReply:
    status, flag, body, details = _REPLIES[result]
    reply = LocalReply(status, flag, body.encode(), details=details)
    if result is OVERFLOW:  # Envoy router: set when a circuit breaker dropped the request
        reply.headers = [("x-envoy-overloaded", "true")]
    if exhausted:
        reply.extra_flags = (ResponseFlag.URX,)
    return reply


class UpstreamCall:
    """Every try of one request to one cluster."""

    __slots__ = (
        "attempt",
        "body_done",
        "connection",
        "delivering",
        "env",
        "finished",
        "head",
        "holding",
        "host",
        "keep_alive",
        "key",
        "method",
        "pool",
        "replay",
        "replay_size",
        "retries_done",
        "retry",
        "retry_held",
        "retry_timer",
        "reused",
        "sent_at",
        "sink",
        "state",
        "tried",
        "try_timer",
        "unsent",
        "unsent_size",
        "waiting",
    )

    def __init__(self, env: ProxyEnv, sink: CallSink, state: ClusterState, *, head: bytes,
                 method: str, retry: RetryPolicy, key: int | None, body_done: bool) -> None:
        self.env = env
        self.sink = sink
        self.state = state
        self.head = head
        self.method = method
        self.retry = retry
        self.key = key
        self.body_done = body_done  # the whole request body has been handed to us
        self.replay: list[bytes] | None = []  # body for another try; None once over the limit
        self.replay_size = 0
        self.unsent: list[bytes] = []  # body not yet written, once it is too big to replay
        self.unsent_size = 0
        self.keep_alive = False  # the response lets the connection be reused
        self.retries_done = 0
        self.retry_held = False  # a retry slot of the breaker is ours
        self.tried: set[int] = set()
        self.attempt = 0
        self.host = -1
        self.pool: EndpointPool | None = None
        self.connection: UpstreamConnection | None = None
        self.try_timer: asyncio.TimerHandle | None = None
        self.retry_timer: asyncio.TimerHandle | None = None  # a retry's back-off
        self.holding = False  # an active-request slot of the breaker is ours
        self.waiting = False  # queued for a connection (a pending request)
        self.reused = False
        self.delivering = False  # the response is going downstream: no more retries
        self.finished = False
        self.sent_at = 0.0

    # tries -------------------------------------------------------------------------------------
    def start(self) -> None:
        """A try: host, breaker slots, then an idle connection, a new one, or the queue."""
        state = self.state
        breaker = state.breaker
        if not breaker.may_request():
            self.give_up(OVERFLOW, exhausted=False)
            return
        avoid = self.tried if self.retry.ignore_previous_hosts else None
        host = state.pick(rng=self.env.rng, key=self.key, avoid=avoid,
                          attempts=self.retry.host_selection_attempts)
        if host is None:
            self.finished = True
            self.sink.upstream_failed(LocalReply(
                503, ResponseFlag.UH, b"no healthy upstream", details="no_healthy_upstream"))
            return
        self.attempt += 1
        self.host = host
        self.tried.add(host)
        self.pool = pool = state.pools[host]
        self.sink.on_host(state, host)
        pool.active += 1
        pool.rq_total += 1
        breaker.requests += 1
        self.holding = True
        timeout = self.retry.per_try_timeout
        if timeout is not None:
            self.try_timer = self.env.loop.call_later(timeout, self.on_try_timeout, self.attempt)
        connection = pool.take_idle()
        if connection is not None:
            self.reused = True
            self.attach(connection)
        elif breaker.may_connect():
            breaker.connections += 1
            self.env.spawn(self.connect(self.attempt))
        elif breaker.may_queue():
            breaker.pending += 1
            self.waiting = True
            pool.waiters.append(self)
        else:
            self.fail(OVERFLOW)

    async def connect(self, attempt: int) -> None:
        pool, state = self.pool, self.state
        assert pool is not None
        try:
            connection = await pool.connect(timeout=state.limits.connect_timeout,
                                            breaker=state.breaker,
                                            keepalive=state.limits.tcp_keepalive,
                                            workload=self.env.tls)
        except (OSError, TimeoutError):
            state.breaker.connections -= 1
            if attempt == self.attempt and not self.finished:
                self.fail(CONNECT_FAILURE)
            else:
                pool.wake()
            return
        if attempt != self.attempt or self.finished:  # this try was given up meanwhile:
            # the connection goes to a queued request, or is closed (Envoy cancels with
            # CloseExcess); kept idle, a flood of aborted requests would pile them up
            connection.release(reusable=bool(pool.waiters))
            return
        self.reused = False
        self.attach(connection)

    def on_connection(self, connection: UpstreamConnection) -> None:
        """The pool hands a released connection to this queued request."""
        self.waiting = False
        self.state.breaker.pending -= 1
        self.reused = True
        self.attach(connection)

    def on_connection_slot(self) -> bool:
        """A connection of the pool closed: open one if the breaker allows. False: still queued."""
        breaker = self.state.breaker
        if not breaker.may_connect():
            return False
        self.waiting = False
        breaker.pending -= 1
        breaker.connections += 1
        self.env.spawn(self.connect(self.attempt))
        return True

    def attach(self, connection: UpstreamConnection) -> None:
        self.connection = connection
        self.sink.on_upstream_principal(connection.peer_uri)
        connection.start(self, method=self.method)
        self.sent_at = self.env.loop.time()
        body = self.replay if self.replay is not None else self.unsent
        connection.write(self.head + b"".join(body) if body else self.head)
        if self.unsent:
            self.unsent = []
            self.unsent_size = 0
            self.sink.resume_request_body()

    # the request body --------------------------------------------------------------------------
    def send(self, data: bytes, *, end: bool) -> None:
        """Body bytes (already framed) from the client: kept for another try while they fit in
        REPLAY_LIMIT (beyond it, as in Envoy, no more retries), written to the current try."""
        if end:
            self.body_done = True
        connection = self.connection
        replay = self.replay
        if replay is not None:
            replay.append(data)
            self.replay_size += len(data)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
                if connection is None:  # everything so far waits for the next connection
                    self.unsent = replay
                    self.unsent_size = self.replay_size
                    self.sink.pause_request_body()
                    return
        elif connection is None:
            self.unsent.append(data)
            self.unsent_size += len(data)
            if self.unsent_size > REPLAY_LIMIT:
                self.sink.pause_request_body()
            return
        if connection is not None:
            connection.write(data)

    # responses ---------------------------------------------------------------------------------
    def on_response_events(self, events: list[ResponseEvent]) -> None:
        if not self.delivering:
            # interim responses (100 Continue: we answered the client ourselves) are dropped;
            # the final one may be in the same read
            while events and isinstance(events[0], ResponseHead) and events[0].status < 200:
                events = events[1:]
            if not events:
                return
            head = events[0]
            if isinstance(head, ResponseHead) and not self.accept(head):
                return
        end = events[-1]
        if isinstance(end, EndOfMessage):
            # the connection goes back to the pool first: a request pipelined behind this one,
            # which the response's end starts, takes it instead of opening another
            self.complete(end)
        self.sink.on_response_events(events)

    def accept(self, head: ResponseHead) -> bool:
        """A response head: forward it, or (retriable status, retries left) try again."""
        self.cancel_try_timer()
        state = self.state
        now = self.env.loop.time()
        if state.detector is not None:
            state.record(self.host, status=head.status, local_failure=False, now=now)
        if head.status >= 400:
            result = AttemptResult(status=head.status, headers=dict(head.headers))
            if self.retry.retriable(result):
                decision = self.decide(result)
                if isinstance(decision, Retry):
                    self.end_try(reusable=False)
                    self.schedule(decision)
                    return False
                if decision.exhausted:
                    self.sink.add_flag(ResponseFlag.URX)
        self.delivering = True
        self.keep_alive = head.keep_alive
        self.sink.upstream_service(now - self.sent_at)
        return True

    def complete(self, end: EndOfMessage) -> None:
        connection = self.connection
        now = self.env.loop.time()
        limits = self.state.limits
        reusable = (self.body_done and self.keep_alive and connection is not None
                    and connection.reusable(limits, now))
        self.end_try(reusable=reusable, idle_until=limits.idle_deadline(now))
        self.finished = True
        self.release_retry()

    def on_upstream_error(self, *, error: ProtocolError | None, eof: bool) -> None:
        if self.finished:
            return
        if self.delivering:  # the response was cut after it started: nothing to retry
            self.end_try(reusable=False)
            self.finished = True
            self.release_retry()
            self.sink.upstream_cut(protocol_error=error is not None and not eof)
            return
        if error is not None and not eof:
            self.end_try(reusable=False, failure=True)
            self.finished = True
            self.release_retry()
            # Envoy answers an upstream protocol error with 502 (envoyproxy/envoy#15033)
            self.sink.upstream_failed(LocalReply(
                502, ResponseFlag.UPE, (UPSTREAM_RESET + "protocol error").encode(),
                details="upstream_reset_before_response_started{protocol_error}"))
            return
        if self.reused and self.replay is not None and self.method in IDEMPOTENT:
            # A pooled connection the upstream had just closed: the same try on a fresh one,
            # not counted as a retry. The request may have reached the application, so only an
            # idempotent one (RFC 9110 §9.2.2: a proxy MUST NOT retry others on its own).
            self.end_try(reusable=False)
            self.tried.discard(self.host)
            self.start()
            return
        self.fail(RESET)

    def on_upstream_writable(self, writable: bool) -> None:
        if writable:
            self.sink.resume_request_body()
        else:
            self.sink.pause_request_body()

    # back-pressure from the client side ------------------------------------------------------
    def pause_reading(self) -> None:
        """The client reads slower than the upstream answers: stop reading the upstream."""
        if self.connection is not None:
            self.connection.pause_reading()

    def resume_reading(self) -> None:
        if self.connection is not None:
            self.connection.resume_reading()

    def on_try_timeout(self, attempt: int) -> None:
        if attempt == self.attempt and not self.delivering and not self.finished:
            self.try_timer = None
            self.fail(TIMEOUT)

    # failures and retries ----------------------------------------------------------------------
    def fail(self, result: AttemptResult) -> None:
        """This try failed before a response head: retry, or give the client Envoy's reply."""
        self.end_try(reusable=False, failure=result is not OVERFLOW)
        decision = self.decide(result)
        if isinstance(decision, Retry):
            self.schedule(decision)
            return
        self.give_up(result, exhausted=decision.exhausted)

    def decide(self, result: AttemptResult) -> Retry | GiveUp:
        if self.replay is None or self.finished:
            return GiveUp(exhausted=False)
        decision = self.retry.decide(retries_done=self.retries_done, result=result,
                                     rng=self.env.rng)
        if isinstance(decision, Retry):
            breaker = self.state.breaker
            if not self.retry_held:
                if not breaker.may_retry():  # Envoy: retry overflow, the try is not made
                    return GiveUp(exhausted=False)
                breaker.retries += 1
                self.retry_held = True
        return decision

    def schedule(self, retry: Retry) -> None:
        self.retries_done += 1
        if retry.backoff > 0:
            self.retry_timer = self.env.loop.call_later(retry.backoff, self.retry_now,
                                                        self.attempt)
        else:
            self.retry_now(self.attempt)

    def retry_now(self, attempt: int) -> None:
        self.retry_timer = None
        if attempt == self.attempt and not self.finished:
            self.start()

    def give_up(self, result: AttemptResult, *, exhausted: bool) -> None:
        if result is OVERFLOW:
            self.state.overflows += 1
        self.finished = True
        self.release_retry()
        self.sink.upstream_failed(failure_reply(result, exhausted=exhausted))

    def abandon(self, *, timed_out: bool = False) -> None:
        """The request ends without this call (client gone, route timeout). A route timeout
        counts against the host as a failure (Envoy's onResponseTimeout: LocalOriginTimeout)."""
        if self.finished:
            return
        self.finished = True
        self.end_try(reusable=False, failure=timed_out and not self.delivering)
        self.release_retry()
        timer, self.retry_timer = self.retry_timer, None
        if timer is not None:  # a retry waiting out its back-off is not made
            timer.cancel()

    # bookkeeping -------------------------------------------------------------------------------
    def end_try(self, *, reusable: bool, failure: bool = False,
                idle_until: float = float("inf")) -> None:
        """Give back what this try holds: connection, queue place, breaker slots, timer."""
        self.cancel_try_timer()
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.release(reusable=reusable, idle_until=idle_until)
        pool = self.pool
        if self.waiting and pool is not None:
            self.waiting = False
            self.state.breaker.pending -= 1
            pool.drop_waiter(self)
        if self.holding:
            self.holding = False
            self.state.breaker.requests -= 1
            if pool is not None:
                pool.active -= 1
                if failure:
                    pool.rq_error += 1
        if failure and self.state.detector is not None:
            now = self.env.loop.time()
            self.state.record(self.host, status=None, local_failure=True, now=now)

    def release_retry(self) -> None:
        if self.retry_held:
            self.retry_held = False
            self.state.breaker.retries -= 1

    def cancel_try_timer(self) -> None:
        timer, self.try_timer = self.try_timer, None
        if timer is not None:
            timer.cancel()
