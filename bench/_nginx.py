"""nginx for the proxy benchmark: (a) a fixed 1 KiB upstream, (b) a keep-alive reverse proxy."""

from __future__ import annotations

from pathlib import Path

from _procs import Service, wait_for_port

NGINX = "/usr/sbin/nginx"
BODY = "0123456789abcdef" * 64  # 1 KiB, nothing nginx would interpret in a quoted string
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
            proxy_set_header Connection "";
        }}
    }}
"""


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
    """(a): answers every request 200 with the fixed 1 KiB BODY."""
    return _start("nginx upstream", workdir, body=_UPSTREAM.format(port=port, payload=BODY),
                  port=port)  # fmt: skip


def start_reverse_proxy(workdir: Path, port: int, *, upstream: int) -> Service:
    """(b): one worker proxying to (a) over a keep-alive upstream pool."""
    body = _REVERSE_PROXY.format(
        port=port, upstream=upstream, keepalive_requests=KEEPALIVE_REQUESTS
    )
    return _start("nginx reverse proxy", workdir, body=body, port=port)
