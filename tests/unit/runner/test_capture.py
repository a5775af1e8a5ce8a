"""Traffic capture: a pod's annotations as istio-iptables' REDIRECT-mode nat rules (pure), and
the same text loaded into a scratch network namespace (root only).

The expected rules are those of istio-iptables (istio tools/istio-iptables/pkg/capture/run.go)
as `iptables-save -t nat` prints them in an injected pod; the annotations are those of istio.io,
"Resource Annotations" (traffic.sidecar.istio.io/*), with the injector's defaults (pkg/kube/
inject's template: includeOutboundIPRanges "*", includeInboundPorts "*", inbound 15090, 15021
and 15020 always excluded).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from remora.runner.capture import (
    EXCLUDE_INBOUND_PORTS,
    EXCLUDE_OUTBOUND_IP_RANGES,
    EXCLUDE_OUTBOUND_PORTS,
    INCLUDE_INBOUND_PORTS,
    INCLUDE_OUTBOUND_IP_RANGES,
    INCLUDE_OUTBOUND_PORTS,
    INTERCEPTION_MODE,
    CaptureError,
    CaptureSpec,
    iptables_restore,
    unsupported_annotations,
)

# The nat table of a pod injected with Istio's defaults, as `iptables-save -t nat` prints it
# (less Istio's RETURN for its HBONE port 15008, which Remora does not serve).
DEFAULT = """\
*nat
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
"""
# ISTIO_OUTPUT's rules for the proxy's own traffic (uid then gid 1337), in every spec.
OWNER = [
    "-s 127.0.0.6/32 -o lo -j RETURN",
    "! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
    "-o lo -m owner ! --uid-owner 1337 -j RETURN",
    "-m owner --uid-owner 1337 -j RETURN",
    "! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
    "-o lo -m owner ! --gid-owner 1337 -j RETURN",
    "-m owner --gid-owner 1337 -j RETURN",
    "-d 127.0.0.1/32 -j RETURN",
]
ALWAYS_EXCLUDED = [f"-p tcp -m tcp --dport {port} -j RETURN" for port in (15090, 15021, 15020)]


def rules(annotations: dict[str, str], chain: str) -> list[str]:
    """The rules of `chain` for a pod with these annotations, without `-A CHAIN`."""
    text = iptables_restore(CaptureSpec.from_annotations(annotations))
    prefix = f"-A {chain} "
    return [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]


# ---------------------------------------------------------------------------------------------
# The rules (pure)
# ---------------------------------------------------------------------------------------------


def test_a_pod_without_annotations_gets_istios_default_capture() -> None:
    assert iptables_restore(CaptureSpec.from_annotations({})) == DEFAULT
    # The same when the annotations spell out the injector's defaults.
    assert iptables_restore(CaptureSpec.from_annotations({
        INCLUDE_OUTBOUND_IP_RANGES: "*", EXCLUDE_OUTBOUND_IP_RANGES: "",
        INCLUDE_INBOUND_PORTS: "*", EXCLUDE_INBOUND_PORTS: "", EXCLUDE_OUTBOUND_PORTS: "",
        INCLUDE_OUTBOUND_PORTS: "", INTERCEPTION_MODE: "REDIRECT",
    })) == DEFAULT  # fmt: skip


def test_the_spec_sets_the_proxy_user_and_listener_ports() -> None:
    text = iptables_restore(CaptureSpec(proxy_uid=1000, proxy_gid=1001, outbound_port=16001,
                                        inbound_port=16006))  # fmt: skip
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001" in text
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006" in text
    assert "-A ISTIO_OUTPUT -m owner --uid-owner 1000 -j RETURN" in text
    assert "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1001 -j RETURN" in text
    assert "1337" not in text


def test_include_outbound_ip_ranges_captures_only_those_ranges() -> None:
    # "A comma separated list of IP ranges in CIDR form to redirect to Envoy"
    assert rules({INCLUDE_OUTBOUND_IP_RANGES: "10.96.0.0/12, 10.244.0.0/16"}, "ISTIO_OUTPUT") == [
        *OWNER,
        "-d 10.96.0.0/12 -j ISTIO_REDIRECT",
        "-d 10.244.0.0/16 -j ISTIO_REDIRECT",
        "-j RETURN",
    ]


def test_an_empty_include_outbound_ip_ranges_disables_outbound_capture() -> None:
    # "An empty list will disable all outbound redirection."
    assert rules({INCLUDE_OUTBOUND_IP_RANGES: ""}, "ISTIO_OUTPUT") == OWNER
    assert rules({INCLUDE_OUTBOUND_IP_RANGES: " "}, "ISTIO_OUTPUT") == OWNER


def test_an_included_loopback_range_is_captured_from_the_app_too() -> None:
    # istio-iptables: "If loopback explicitly set via OutboundIPRangesInclude, then don't
    # return" the app's lo traffic (only 127.0.0.1 itself is never captured).
    out = rules({INCLUDE_OUTBOUND_IP_RANGES: "127.0.0.0/8"}, "ISTIO_OUTPUT")
    assert "-o lo -m owner ! --uid-owner 1337 -j RETURN" not in out
    assert "-o lo -m owner ! --gid-owner 1337 -j RETURN" not in out
    assert out[-3:] == ["-d 127.0.0.1/32 -j RETURN", "-d 127.0.0.0/8 -j ISTIO_REDIRECT",
                        "-j RETURN"]  # fmt: skip


def test_exclude_outbound_ip_ranges_return_after_localhost_and_before_the_capture() -> None:
    # "A comma separated list of IP ranges in CIDR form to be excluded from redirection";
    # a range with host bits is the network iptables-save shows (istio-iptables does the same).
    assert rules({EXCLUDE_OUTBOUND_IP_RANGES: "10.123.0.0/16,169.254.169.254/32, 192.168.1.7/24"},
                 "ISTIO_OUTPUT") == [
        *OWNER,
        "-d 10.123.0.0/16 -j RETURN",
        "-d 169.254.169.254/32 -j RETURN",
        "-d 192.168.1.0/24 -j RETURN",
        "-j ISTIO_REDIRECT",
    ]  # fmt: skip


def test_exclusions_also_narrow_an_include_list() -> None:
    # istio-iptables writes the exclusions whatever the include list (the doc says they apply
    # with "*"): an excluded range inside an included one is still not captured.
    out = rules({INCLUDE_OUTBOUND_IP_RANGES: "10.0.0.0/8", EXCLUDE_OUTBOUND_IP_RANGES:
                 "10.123.0.0/16"}, "ISTIO_OUTPUT")  # fmt: skip
    assert out[-3:] == ["-d 10.123.0.0/16 -j RETURN", "-d 10.0.0.0/8 -j ISTIO_REDIRECT",
                        "-j RETURN"]  # fmt: skip


def test_include_inbound_ports_captures_only_those_ports() -> None:
    # "A comma separated list of inbound ports for which traffic is to be redirected to Envoy";
    # excludeInboundPorts "Only applies when all inbound traffic (i.e. '*') is being redirected".
    annotations = {INCLUDE_INBOUND_PORTS: "9080, 8443", EXCLUDE_INBOUND_PORTS: "9080"}
    assert rules(annotations, "ISTIO_INBOUND") == [
        "-p tcp -m tcp --dport 9080 -j ISTIO_IN_REDIRECT",
        "-p tcp -m tcp --dport 8443 -j ISTIO_IN_REDIRECT",
    ]
    assert rules(annotations, "PREROUTING") == ["-p tcp -j ISTIO_INBOUND"]


def test_an_empty_include_inbound_ports_disables_inbound_capture() -> None:
    # "An empty list will disable all inbound redirection."
    assert rules({INCLUDE_INBOUND_PORTS: ""}, "PREROUTING") == []
    assert rules({INCLUDE_INBOUND_PORTS: ""}, "ISTIO_INBOUND") == []
    assert rules({INCLUDE_INBOUND_PORTS: ""}, "ISTIO_OUTPUT") == [*OWNER, "-j ISTIO_REDIRECT"]


def test_exclude_inbound_ports_return_after_the_always_excluded_ones() -> None:
    # "A comma separated list of inbound ports to be excluded from redirection to Envoy";
    # the injector adds 15090, 15021 and the status port 15020 (once).
    assert rules({EXCLUDE_INBOUND_PORTS: "8081, 15020 ,22"}, "ISTIO_INBOUND") == [
        *ALWAYS_EXCLUDED,
        "-p tcp -m tcp --dport 8081 -j RETURN",
        "-p tcp -m tcp --dport 22 -j RETURN",
        "-p tcp -j ISTIO_IN_REDIRECT",
    ]


def test_the_always_excluded_inbound_ports_are_the_callers() -> None:
    spec = CaptureSpec.from_annotations({EXCLUDE_INBOUND_PORTS: "8081"},
                                        always_excluded_inbound=(15021,))  # fmt: skip
    assert spec.exclude_inbound_ports == (15021, 8081)
    assert CaptureSpec.from_annotations({}, always_excluded_inbound=()).exclude_inbound_ports == ()


def test_exclude_outbound_ports_return_first() -> None:
    # "A comma separated list of outbound ports to be excluded from redirection to Envoy";
    # istio-iptables puts them first, "before connections back to self are redirected".
    assert rules({EXCLUDE_OUTBOUND_PORTS: "22,3306"}, "ISTIO_OUTPUT") == [
        "-p tcp -m tcp --dport 22 -j RETURN",
        "-p tcp -m tcp --dport 3306 -j RETURN",
        *OWNER,
        "-j ISTIO_REDIRECT",
    ]


def test_include_outbound_ports_are_captured_whatever_the_ranges() -> None:
    # "A comma separated list of outbound ports for which traffic is to be redirected to
    # Envoy, regardless of the destination IP" (but after the excluded ranges, as written).
    annotations = {INCLUDE_OUTBOUND_PORTS: "5432, 6379", INCLUDE_OUTBOUND_IP_RANGES: "",
                   EXCLUDE_OUTBOUND_IP_RANGES: "10.123.0.0/16"}  # fmt: skip
    assert rules(annotations, "ISTIO_OUTPUT") == [
        *OWNER,
        "-d 10.123.0.0/16 -j RETURN",
        "-p tcp -m tcp --dport 5432 -j ISTIO_REDIRECT",
        "-p tcp -m tcp --dport 6379 -j ISTIO_REDIRECT",
    ]


def test_every_annotation_together_in_istio_iptables_order() -> None:
    out = rules({
        INCLUDE_OUTBOUND_IP_RANGES: "10.96.0.0/12", EXCLUDE_OUTBOUND_IP_RANGES: "10.96.0.1/32",
        EXCLUDE_OUTBOUND_PORTS: "22", INCLUDE_OUTBOUND_PORTS: "443",
    }, "ISTIO_OUTPUT")  # fmt: skip
    assert out == [
        "-p tcp -m tcp --dport 22 -j RETURN",
        *OWNER,
        "-d 10.96.0.1/32 -j RETURN",
        "-p tcp -m tcp --dport 443 -j ISTIO_REDIRECT",
        "-d 10.96.0.0/12 -j ISTIO_REDIRECT",
        "-j RETURN",
    ]


def test_only_tcp_is_captured() -> None:
    text = iptables_restore(CaptureSpec.from_annotations({EXCLUDE_OUTBOUND_PORTS: "53"}))
    assert "udp" not in text and "15053" not in text


def test_values_are_written_once() -> None:
    spec = CaptureSpec.from_annotations({
        EXCLUDE_OUTBOUND_PORTS: "22,22", INCLUDE_INBOUND_PORTS: "80,080,80",
        EXCLUDE_OUTBOUND_IP_RANGES: "10.0.0.0/8,10.1.2.3/8",
    })  # fmt: skip
    assert spec.exclude_outbound_ports == (22,)
    assert spec.include_inbound_ports == ("80",)
    assert spec.exclude_outbound_ip_ranges == ("10.0.0.0/8",)


def test_a_spec_built_by_hand_is_normalised() -> None:
    spec = CaptureSpec(exclude_outbound_ip_ranges=("10.1.2.3/16",),
                       include_inbound_ports=("0080",))  # fmt: skip
    assert spec.exclude_outbound_ip_ranges == ("10.1.0.0/16",)
    assert spec.include_inbound_ports == ("80",)


# ---------------------------------------------------------------------------------------------
# Bad values: a CaptureError naming the annotation and its value
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/8,bogus/8", "'bogus/8'"),
        (INCLUDE_OUTBOUND_IP_RANGES, "10.96.0.1", "not in CIDR form"),  # Istio ignores it
        (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/33", "'10.0.0.0/33'"),
        (INCLUDE_OUTBOUND_IP_RANGES, "fd00::/8", "IPv6"),
        (INCLUDE_OUTBOUND_IP_RANGES, "*,10.0.0.0/8", "'*' is the whole value"),
        (EXCLUDE_OUTBOUND_IP_RANGES, "*", "cannot be excluded"),  # istio-iptables refuses it
        (EXCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/8, ::1/128", "IPv6"),
        (INCLUDE_INBOUND_PORTS, "8080,http", "'http' is not a port"),
        (INCLUDE_INBOUND_PORTS, "80,*", "'*' is the whole value"),
        (EXCLUDE_INBOUND_PORTS, "0", "'0' is not a port"),
        (EXCLUDE_INBOUND_PORTS, "*", "'*' is not a port"),
        (EXCLUDE_OUTBOUND_PORTS, "65536", "'65536' is not a port"),
        (EXCLUDE_OUTBOUND_PORTS, "1000:2000", "'1000:2000' is not a port"),
        (INCLUDE_OUTBOUND_PORTS, "-1", "'-1' is not a port"),
        (INCLUDE_OUTBOUND_PORTS, "8 0", "'8 0' is not a port"),
    ],
)
def test_a_bad_value_names_the_annotation(key: str, value: str, why: str) -> None:
    with pytest.raises(CaptureError) as caught:
        CaptureSpec.from_annotations({key: value})
    assert f"{key}={value!r}" in str(caught.value)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"outbound_port": 0}, "CaptureSpec.outbound_port: 0 is not a port"),
        ({"exclude_outbound_ports": (70000,)}, "CaptureSpec.exclude_outbound_ports"),
        ({"proxy_uid": -1}, "CaptureSpec.proxy_uid"),
        ({"include_outbound_ip_ranges": ("10.0.0.0",)}, "not in CIDR form"),
        ({"exclude_outbound_ip_ranges": ("*",)}, "cannot be excluded"),
        ({"include_inbound_ports": ("http",)}, "CaptureSpec.include_inbound_ports"),
    ],
)
def test_a_spec_with_a_bad_field_is_refused(fields: dict[str, object], why: str) -> None:
    with pytest.raises(CaptureError, match="CaptureSpec") as caught:
        CaptureSpec(**fields)  # type: ignore[arg-type]
    assert why in str(caught.value)


def test_the_always_excluded_ports_are_checked() -> None:
    with pytest.raises(CaptureError, match="always_excluded_inbound: 0 is not a port"):
        CaptureSpec.from_annotations({}, always_excluded_inbound=(0,))


# ---------------------------------------------------------------------------------------------
# Annotations Remora does not act on
# ---------------------------------------------------------------------------------------------


def test_unsupported_annotations_are_named_for_a_warning() -> None:
    annotations = {
        "traffic.sidecar.istio.io/kubevirtInterfaces": "net1",
        "traffic.sidecar.istio.io/excludeInterfaces": "eth1",
        "traffic.sidecar.istio.io/includeOutboundIpRanges": "10.0.0.0/8",  # misspelt
        INTERCEPTION_MODE: "TPROXY",
        INCLUDE_OUTBOUND_IP_RANGES: "*", EXCLUDE_INBOUND_PORTS: "8081",
        "sidecar.istio.io/inject": "true", "status.sidecar.istio.io/port": "15020",
    }  # fmt: skip
    assert unsupported_annotations(annotations) == [
        INTERCEPTION_MODE,
        "traffic.sidecar.istio.io/excludeInterfaces",
        "traffic.sidecar.istio.io/includeOutboundIpRanges",
        "traffic.sidecar.istio.io/kubevirtInterfaces",
    ]


@pytest.mark.parametrize(("mode", "unsupported"),
                         [("REDIRECT", False), (" REDIRECT ", False), ("TPROXY", True),
                          ("NONE", True), ("redirect", True)])  # fmt: skip
def test_interception_mode_other_than_redirect_is_unsupported(mode: str,
                                                              unsupported: bool) -> None:
    # Istio's injector takes REDIRECT, TPROXY or NONE, spelt so.
    assert unsupported_annotations({INTERCEPTION_MODE: mode}) == (
        [INTERCEPTION_MODE] if unsupported else [])  # fmt: skip


def test_no_annotations_nothing_unsupported() -> None:
    assert unsupported_annotations({}) == []


# ---------------------------------------------------------------------------------------------
# In a network namespace (root): the rules load, and connections are redirected
# ---------------------------------------------------------------------------------------------

TIMEOUT = 10  # for each command; the connections themselves wait 1 s at most

# Run inside the namespace: a listener on 127.0.0.1:15001 (the outbound capture port) and a
# connection to 10.123.0.1:80, an address on no host (the namespace routes 10.123.0.0/16 to a
# veth whose peer has no address). Prints whether the listener got the connection and, if so,
# the destination the connection was for (SO_ORIGINAL_DST).
PROBE = """
import json, socket, struct
SO_ORIGINAL_DST = 80
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 15001))
listener.listen(1)
listener.settimeout(1)
client = socket.socket()
client.settimeout(1)
try:
    client.connect(("10.123.0.1", 80))
    connected = True
except OSError:
    connected = False
result = {"connected": connected, "redirected": False}
try:
    conn, _ = listener.accept()
except OSError:
    pass
else:
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, addr = struct.unpack("!2xH4s8x", raw)
    result.update(redirected=True, original_dst=f"{socket.inet_ntoa(addr)}:{port}")
print(json.dumps(result))
"""


def _run(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)  # fmt: skip
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A scratch network namespace: lo up, 10.123.0.2/16 on a veth; deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces and iptables need root")
    missing = [t for t in ("ip", "iptables-restore", "iptables-save") if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (iproute2, iptables)")
    name = f"rmr-test-{secrets.token_hex(4)}"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        _run("ip", "-n", name, "addr", "add", "10.123.0.2/16", "dev", "eth0")
        _run("ip", "-n", name, "link", "set", "eth0", "up")
        _run("ip", "-n", name, "link", "set", "eth1", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=TIMEOUT,
                       check=False)  # fmt: skip


def _load(ns: str, annotations: dict[str, str]) -> str:
    text = iptables_restore(CaptureSpec.from_annotations(annotations))
    _run("ip", "netns", "exec", ns, "iptables-restore", "--noflush", stdin=text)
    return text


def _probe(ns: str, *, as_proxy: bool = False) -> dict[str, object]:
    user = ("setpriv", "--reuid=1337", "--regid=1337", "--clear-groups") if as_proxy else ()
    out = _run("ip", "netns", "exec", ns, *user, sys.executable, "-c", PROBE)
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.parametrize("annotations", [
    {},
    {INCLUDE_OUTBOUND_IP_RANGES: "10.96.0.0/12,127.0.0.0/8", EXCLUDE_OUTBOUND_IP_RANGES:
     "10.123.0.0/16", INCLUDE_INBOUND_PORTS: "9080", EXCLUDE_OUTBOUND_PORTS: "22",
     INCLUDE_OUTBOUND_PORTS: "5432"},
    {INCLUDE_INBOUND_PORTS: "", INCLUDE_OUTBOUND_IP_RANGES: ""},
])  # fmt: skip
def test_iptables_save_shows_the_rules_as_written(netns: str, annotations: dict[str, str]) -> None:
    text = _load(netns, annotations)
    saved = _run("ip", "netns", "exec", netns, "iptables-save", "-t", "nat").splitlines()
    assert [line for line in saved if line.startswith("-A ")] == [
        line for line in text.splitlines() if line.startswith("-A ")]  # fmt: skip
    for chain in ("ISTIO_INBOUND", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_REDIRECT"):
        assert f":{chain} - [0:0]" in saved


def test_outbound_tcp_reaches_the_outbound_listener_with_its_original_destination(
    netns: str,
) -> None:
    _load(netns, {})
    assert _probe(netns) == {"connected": True, "redirected": True,
                             "original_dst": "10.123.0.1:80"}  # fmt: skip


def test_an_excluded_range_is_not_redirected(netns: str) -> None:
    _load(netns, {EXCLUDE_OUTBOUND_IP_RANGES: "10.123.0.0/16"})
    assert _probe(netns) == {"connected": False, "redirected": False}


def test_the_proxys_own_traffic_is_not_redirected(netns: str) -> None:
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to connect as the proxy's uid 1337")
    _load(netns, {})
    assert _probe(netns, as_proxy=True) == {"connected": False, "redirected": False}
