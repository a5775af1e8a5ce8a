"""End to end: EnvoyFilter HTTP_FILTER patches in a real `remora proxy -f <dir>` on 127.0.0.1
(istio.io/latest/docs/reference/config/networking/envoy-filter/): the gzip compressor in front
of an upstream serving JSON, as curl and httpx see it (envoyproxy.io/docs/envoy/latest/
configuration/http/http_filters/compressor_filter); seed 002's envoy-cache.yaml (the cache
filter with a SimpleHttpCache, envoyproxy.io/.../http_filters/cache_filter) keeping the second
identical GET from the upstream; and a Lua filter, which Remora does not implement, refused by
`remora analyze` and `remora apply` with the filter named (the plain
`name: envoy.filters.http.lua` through `remora apply` is in test_cli_kubectl)."""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import (
    REMORA,
    EchoHandler,
    EchoServer,
    Proxy,
    echo_servers,
    run_controlplane,
    run_proxy,
    service_yaml,
)

pytestmark = pytest.mark.timeout(60)

HOST = "reviews:9080"
ITEMS = [{"id": i, "name": f"review-{i}", "stars": i % 5 + 1} for i in range(70)]
DOC = json.dumps({"reviews": ITEMS, "pad": ""}).encode()
DOC = json.dumps({"reviews": ITEMS, "pad": "p" * (4096 - len(DOC))}).encode()
"""The 4 KiB JSON document the upstream serves at /doc..."""


class DocHandler(EchoHandler):
    """EchoHandler, and /doc... answers DOC (application/json, with Content-Length); under
    /doc/cache also `Cache-Control: max-age=300`. Hits are counted per path."""

    def handle_any(self) -> None:
        if not self.path.startswith("/doc"):
            super().handle_any()
            return
        server = self.server
        with server.lock:
            server.hits += 1
            server.paths[self.path] += 1
            server.headers[self.path] = {k.lower(): v for k, v in self.headers.items()}
        self._body_length()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(DOC)))
        if self.path.startswith("/doc/cache"):
            self.send_header("cache-control", "max-age=300")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(DOC)

    do_GET = do_POST = do_HEAD = handle_any  # noqa: N815


GZIP = """\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: gzip, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.compressor
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
          response_direction_config:
            common_config:
              min_content_length: 100
              content_type: [application/json]
          compressor_library:
            name: text_optimized
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
              memory_level: 3
              window_bits: 10
              compression_level: BEST_COMPRESSION
"""
"""The current compressor v3 form (response_direction_config, the gzip library), as in
Envoy's compressor filter docs, inserted before the router of the outbound listeners."""

SEED_CACHE = """\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: http-cache
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.cache
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig
"""  # noqa: E501
"""envoy-cache.yaml of seed 002 (/work/shared/seeds/002_03fd0d57e6368be1.txt), its list
bullets made YAML."""


@dataclass
class Sidecar:
    proxy: Proxy
    upstream: EchoServer

    def hits(self, path: str) -> int:
        with self.upstream.lock:
            return self.upstream.paths[path]


@contextlib.contextmanager
def sidecar(tmp: Path, envoy_filter: str) -> Iterator[Sidecar]:
    """`remora proxy -f <dir>`: reviews:9080 on a DocHandler upstream, and `envoy_filter`."""
    config = tmp / "config"
    config.mkdir()
    with echo_servers("reviews") as servers:
        upstream = servers["reviews"]
        upstream.RequestHandlerClass = DocHandler
        (config / "reviews.yaml").write_text(service_yaml("reviews", 9080, [(upstream.port, {})]))
        (config / "envoyfilter.yaml").write_text(envoy_filter)
        with run_proxy(config, tmp=tmp) as proxy:
            yield Sidecar(proxy, upstream)
            assert proxy.process.poll() is None, proxy.logs()
            assert "Traceback" not in proxy.logs()


@pytest.fixture(scope="module")
def gzipping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    with sidecar(tmp_path_factory.mktemp("gzip"), GZIP) as running:
        yield running


@pytest.fixture(scope="module")
def caching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    with sidecar(tmp_path_factory.mktemp("cache"), SEED_CACHE) as running:
        yield running


CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="no curl binary")


def curl(url: str, *args: str) -> tuple[dict[str, str], bytes]:
    """The real curl: (the response's headers, lower-case names; the body as written)."""
    assert CURL is not None
    done = subprocess.run([CURL, "-sS", "--max-time", "20", "-D", "-", "-H", f"Host: {HOST}",
                           *args, url], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


# the compressor -------------------------------------------------------------------------------
@needs_curl
def test_curl_compressed_gets_the_json_and_sees_content_encoding_gzip(gzipping: Sidecar) -> None:
    """`curl --compressed` sends Accept-Encoding (deflate, gzip, br, zstd here) and decodes:
    the body is the upstream's JSON byte for byte; the response says gzip, chunked, Vary."""
    headers, body = curl(f"{gzipping.proxy.url}/doc/curl", "--compressed")
    assert body == DOC
    assert headers["content-encoding"] == "gzip"
    assert headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in headers
    assert headers["vary"].lower() == "accept-encoding"
    assert "gzip" in gzipping.upstream.headers["/doc/curl"]["accept-encoding"]


@needs_curl
def test_curl_without_compressed_gets_gzip_bytes_only_when_it_asks(gzipping: Sidecar) -> None:
    """Plain curl sends no Accept-Encoding: the JSON as the upstream sent it, with its
    Content-Length; asking for gzip without --compressed shows the gzip bytes themselves."""
    headers, body = curl(f"{gzipping.proxy.url}/doc/plain")
    assert body == DOC
    assert "content-encoding" not in headers
    assert headers["content-length"] == str(len(DOC))
    headers, body = curl(f"{gzipping.proxy.url}/doc/raw", "-H", "Accept-Encoding: gzip")
    assert headers["content-encoding"] == "gzip"
    assert body[:2] == b"\x1f\x8b" and len(body) < len(DOC) // 2
    assert gzip.decompress(body) == DOC


def test_httpx_gets_the_original_json_through_the_compressor(gzipping: Sidecar) -> None:
    with httpx.Client(base_url=gzipping.proxy.url, headers={"host": HOST}, timeout=10) as client:
        compressed = client.get("/doc/httpx", headers={"accept-encoding": "gzip"})
        assert compressed.status_code == 200
        assert compressed.headers["content-encoding"] == "gzip"
        assert compressed.content == DOC
        assert compressed.json()["reviews"] == ITEMS
        assert compressed.num_bytes_downloaded < len(DOC) // 2
        plain = client.get("/doc/httpx-identity", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == DOC
        # the echo's own JSON (no /doc): compressed as well, and decodes to what it saw
        echoed = client.get("/echo", headers={"accept-encoding": "gzip"})
        assert echoed.headers["content-encoding"] == "gzip"
        assert echoed.json()["path"] == "/echo"


# the cache ------------------------------------------------------------------------------------
def test_the_seeds_cache_keeps_the_second_identical_get_from_the_upstream(
        caching: Sidecar) -> None:
    """Seed 002's envoy-cache.yaml: a 200 with Cache-Control: max-age=300 is stored; the
    second GET is answered by the proxy (the upstream counts one hit) with an Age."""
    with httpx.Client(base_url=caching.proxy.url, headers={"host": HOST}, timeout=10) as client:
        first = client.get("/doc/cache")
        second = client.get("/doc/cache")
    assert first.content == second.content == DOC
    assert caching.hits("/doc/cache") == 1
    assert "age" not in first.headers
    assert int(second.headers["age"]) >= 0
    assert second.headers["cache-control"] == "max-age=300"


@needs_curl
def test_curl_gets_a_cached_response_without_the_upstream(caching: Sidecar) -> None:
    for _ in range(3):
        headers, body = curl(f"{caching.proxy.url}/doc/cache-curl")
        assert body == DOC
    assert caching.hits("/doc/cache-curl") == 1
    assert "age" in headers


def test_what_the_upstream_does_not_let_be_cached_reaches_it_each_time(caching: Sidecar) -> None:
    """No Cache-Control (the echo's /doc without `cache`): no freshness, never stored."""
    with httpx.Client(base_url=caching.proxy.url, headers={"host": HOST}, timeout=10) as client:
        for _ in range(3):
            assert client.get("/doc/uncached").content == DOC
    assert caching.hits("/doc/uncached") == 3


# a filter Remora does not implement -----------------------------------------------------------
LUA = """apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua-hello, namespace: default}
spec:
  workloadSelector:
    labels: {app: reviews}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: NAME
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          inlineCode: |
            function envoy_on_response(handle) handle:headers():add("x-lua", "1") end
"""
"""Istio's Lua example shape: INSERT_BEFORE the router on the inbound side."""


def run_cli(*args: str, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REMORA, *args], input=stdin, capture_output=True, text=True,
                          timeout=30, check=False, env=env)


@pytest.mark.parametrize(("name", "named"), [
    ("envoy.filters.http.lua", "patch.value.name: envoy.filters.http.lua"),
    # Envoy picks a filter by its typed_config's type: a known name does not hide a Lua config
    ("envoy.filters.http.compressor",
     "patch.value.typed_config.@type: envoy.extensions.filters.http.lua.v3.Lua"),
], ids=["lua-name", "lua-config-under-a-known-name"])
def test_remora_analyze_refuses_a_lua_filter_naming_it(tmp_path: Path, name: str,
                                                      named: str) -> None:
    """`remora analyze -f`: an Error (IST0106 schema validation, exit 79 as istioctl), with the
    field and the filter in the message and the list of what Remora implements."""
    path = tmp_path / "lua.yaml"
    path.write_text(LUA.replace("NAME", name))
    done = run_cli("analyze", "-f", str(path))
    assert done.returncode == 79, done.stdout + done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("Error [IST0106] (EnvoyFilter default/lua-hello ")
    assert f"spec.configPatches[0].{named}" in line
    assert "is not" in line and "Remora implements" in line
    assert "envoy.filters.http.compressor" in line.split("it implements:", 1)[1]
    assert "Traceback" not in done.stderr


def test_remora_apply_refuses_a_lua_config_under_a_known_filter_name(tmp_path: Path) -> None:
    """The control plane's apply: `Error from server (Invalid)` naming the Lua config's type,
    and nothing stored (a `get` finds no such EnvoyFilter)."""
    with run_controlplane(tmp_path) as plane:
        env = {"PATH": "/usr/bin:/bin", "REMORA_SERVER": plane.url,
               "REMORA_CREDENTIALS": str(plane.credentials)}
        done = run_cli("apply", "-f", "-", stdin=LUA.replace(
            "NAME", "envoy.filters.http.compressor"), env=env)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Error from server (Invalid)" in done.stderr
        assert ("spec.configPatches[0].patch.value.typed_config.@type: "
                "envoy.extensions.filters.http.lua.v3.Lua") in done.stderr
        missing = run_cli("get", "envoyfilter", "lua-hello", "-n", "default", env=env)
        assert missing.returncode == 1
        assert 'envoyfilters.networking.istio.io "lua-hello" not found' in missing.stderr


def test_a_head_after_a_cached_get_is_answered_with_the_stored_head(caching: Sidecar) -> None:
    """Envoy's cache serves HEAD from a stored GET (never stores a HEAD itself): the 200's
    headers, its Content-Length included (RFC 9110 §9.3.2), no body."""
    with httpx.Client(base_url=caching.proxy.url, headers={"host": HOST}, timeout=10) as client:
        assert client.get("/doc/cache-head").content == DOC
        head = client.head("/doc/cache-head")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(DOC))
    assert caching.hits("/doc/cache-head") == 1


STREAM_IDLE = """\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: stream-idle, namespace: istio-system}
spec:
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter: {name: envoy.filters.network.http_connection_manager}
    patch:
      operation: MERGE
      value:
        name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stream_idle_timeout: 1s
          common_http_protocol_options: {max_headers_count: 20}
          use_remote_address: true
"""  # noqa: E501
"""The EnvoyFilter Istio's users write to change Envoy's downstream timeouts: a MERGE into the
HTTP connection manager of the outbound listeners (`use_remote_address` is not applied)."""


def test_a_connection_manager_merge_sets_the_listeners_timeouts(tmp_path: Path) -> None:
    """stream_idle_timeout from the patch: a stalled body is 408 "stream timeout" after 1 s
    (the proxy's own default is 5 min); config_dump shows the effective settings and the
    patch; the field not applied is logged with its path."""
    with sidecar(tmp_path, STREAM_IDLE) as running:
        with socket.create_connection(("127.0.0.1", running.proxy.outbound), timeout=10) as sock:
            sock.sendall(f"POST /stall HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n"
                         "only ten b".encode())
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408 ") and reply.endswith(b"stream timeout"), reply
        dump = httpx.get(f"{running.proxy.admin_url}/config_dump", timeout=10).json()
        (outbound,) = (x for x in dump["listeners"] if x["direction"] == "outbound")
        effective = outbound["httpConnectionManager"]
        assert effective["stream_idle_timeout"] == "1s"
        assert effective["common_http_protocol_options"]["max_headers_count"] == 20
        assert effective["common_http_protocol_options"]["idle_timeout"] == "3600s"
        assert outbound["connectionManagerPatch"]["sources"] == [
            "EnvoyFilter istio-system/stream-idle spec.configPatches[0]"]
        assert ("spec.configPatches[0].patch.value.typed_config.use_remote_address"
                in running.proxy.logs())
