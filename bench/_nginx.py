"""nginx for the proxy benchmark: (a) a fixed 1 KiB upstream that also serves a fixed 4 KiB JSON
body, (b) a keep-alive reverse proxy, (g) the same reverse proxy with `gzip on` for the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from _procs import Service, wait_for_port

NGINX = "/usr/sbin/nginx"
BODY = "0123456789abcdef" * 64  # 1 KiB, nothing nginx would interpret in a quoted string
JSON_PATH = "/catalog/products"  # (a) answers it with JSON_BODY, application/json


def _catalog(size: int = 4096) -> str:
    """A page of a product catalog as compact JSON of exactly `size` bytes: keys repeat, values
    vary, so it compresses like an API answer (about 4x at level 6), not like filler. No `$`,
    quote or backslash: nginx takes it verbatim in single-quoted strings."""
    colors = ("red", "blue", "green", "black", "white", "grey", "navy", "olive")
    words = ("cotton", "shirt", "linen", "trousers", "wool", "jacket", "canvas", "sneakers",
             "leather", "belt", "silk", "scarf")  # fmt: skip

    def page(count: int, cursor: str) -> str:
        items = [{"id": 1000 + k, "sku": f"SKU-{k * 7919 % 100000:05d}",
                  "name": f"{words[k % 12]} {words[(k * 5 + 3) % 12]} {colors[k % 8]}",
                  "price": round(5 + k * 37 % 9000 / 100, 2), "currency": "EUR",
                  "stock": k * 131 % 500, "tags": [colors[k * 3 % 8], words[k * 7 % 12]],
                  "rating": round(1 + k * 17 % 40 / 10, 1)} for k in range(count)]  # fmt: skip
        document = {"page": 1, "per_page": count, "items": items,
                    "next": f"{JSON_PATH}?page=2", "cursor": cursor}  # fmt: skip
        return json.dumps(document, separators=(",", ":"))

    count = 1
    while len(page(count + 1, "")) <= size:
        count += 1
    short = size - len(page(count, ""))
    return page(count, ("0123456789abcdef" * (short // 16 + 1))[:short])


JSON_BODY = _catalog()
# gzip on both sides at the same level: Envoy's gzip library defaults to DEFAULT_COMPRESSION,
# zlib's Z_DEFAULT_COMPRESSION, which is level 6; nginx's gzip_comp_level defaults to 1.
GZIP_LEVEL = 6
GZIP_MIN_LENGTH = 100  # both sides; Envoy's default is 30, nginx's 20
KEEPALIVE_REQUESTS = 1_000_000  # nginx's default 1000 would recycle wrk's connections mid-run

_MAIN = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {dir}/access.log combined buffer=64k flush=1s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests {keepalive_requests};
    server_tokens off;
{body}
}}
"""

_UPSTREAM = """\
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "{payload}";
        }}
        location = {json_path} {{
            default_type application/json;
{json_parts}
            return 200 "{json_vars}";
        }}
    }}
"""

_REVERSE_PROXY = """\
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 32;
        keepalive_requests {keepalive_requests};
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";{gzip}
        }}
    }}
"""

# (g): what the heavier Remora chain does to the JSON answer, in nginx's words. Envoy's gzip
# library uses window_bits 12 and memory_level 5; nginx derives both from the Content-Length
# (13 and 6 for a 4 KiB body) and has no documented directive for them, so only the level is
# matched. add_header is the route's headers.response.set; nginx retries a failed upstream
# (proxy_next_upstream error timeout) by default.
_GZIP = """
            gzip on;
            gzip_types application/json;
            gzip_comp_level {level};
            gzip_min_length {min_length};
            gzip_proxied any;
            gzip_vary on;
            add_header x-bench-route heavy-chain;"""


def _start(name: str, workdir: Path, *, body: str, port: int) -> Service:
    workdir.mkdir(parents=True)
    conf = workdir / "nginx.conf"
    conf.write_text(_MAIN.format(dir=workdir, body=body, keepalive_requests=KEEPALIVE_REQUESTS))
    argv = [NGINX, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf),
            "-g", "daemon off;"]  # fmt: skip
    service = Service(name, argv, log=workdir / "stdout.log", cwd=workdir)
    wait_for_port(port, service)
    return service


def start_upstream(workdir: Path, port: int) -> Service:
    """(a): answers every request 200 with the fixed 1 KiB BODY, and JSON_PATH with the 4 KiB
    JSON_BODY (application/json, uncompressed whatever the client accepts). nginx takes no
    string of 4 KiB in its config (nor would its worker, not root, read a file in the
    benchmark's private temporary directory), so the body is set in 2 KiB variables."""
    parts = [JSON_BODY[i : i + 2048] for i in range(0, len(JSON_BODY), 2048)]
    body = _UPSTREAM.format(
        port=port, payload=BODY, json_path=JSON_PATH,
        json_parts="\n".join(f"            set $json{n} '{part}';" for n, part in enumerate(parts)),
        json_vars="".join(f"$json{n}" for n in range(len(parts))),
    )  # fmt: skip
    return _start("nginx upstream", workdir, body=body, port=port)


def start_reverse_proxy(workdir: Path, port: int, *, upstream: int, gzip: bool = False) -> Service:
    """(b): one worker proxying to (a) over a keep-alive upstream pool. `gzip`: (g), which also
    compresses application/json at GZIP_LEVEL and sets the heavier chain's response header."""
    body = _REVERSE_PROXY.format(
        port=port, upstream=upstream, keepalive_requests=KEEPALIVE_REQUESTS,
        gzip=_GZIP.format(level=GZIP_LEVEL, min_length=GZIP_MIN_LENGTH) if gzip else "",
    )  # fmt: skip
    name = "nginx reverse proxy" + (" (gzip)" if gzip else "")
    return _start(name, workdir, body=body, port=port)
