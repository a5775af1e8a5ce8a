"""Gateway TLS compiled as Istio's (istio.io Gateway ServerTLSSettings; "Secure Gateways" Key
formats; pilot/pkg/credentials/kube secrets.go), the SNI choice as Envoy's FilterChainMatch
server_names, and what `apply` still reports as not enforced."""

from __future__ import annotations

import base64
import ssl

import pytest

from remora.api.loader import load_text
from remora.api.unenforced import findings
from remora.mesh.encoding import decode_value, encode_value
from remora.mesh.snapshot import Listener, ListenerTls, Snapshot
from remora.proxy.gatewaytls import INCOMPLETE, client_hello_sni, pick
from tests.certkit import MeshCA
from tests.unit.mesh import gateway

LABELS = {"istio": "ingressgateway"}
CERT, KEY = (text.encode() for text in MeshCA.create().issue("spiffe://shop"))
CA = MeshCA.create().pem.encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret(name: str, **data: bytes) -> str:
    body = "\n".join(f"  {key.replace('_', '.')}: '{_b64(value)}'" for key, value in data.items())
    return f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n" \
           f"data:\n{body}\n---\n"


def _gateway(tls: str, hosts: str = "[shop.example]") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: public, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: {hosts}
    tls: {tls}
---
"""


def _listener(text: str) -> tuple[Listener | None, Snapshot]:
    snap = gateway(text, labels=LABELS, namespace="default")  # the workload's namespace
    return next((x for x in snap.listeners if x.port == 443), None), snap


@pytest.mark.parametrize(("secrets", "ca"), [
    (_secret("c", tls_crt=CERT, tls_key=KEY, ca_crt=CA), CA),  # kubernetes.io/tls + ca.crt
    (_secret("c", cert=CERT, key=KEY, cacert=CA), CA),  # generic + cacert
    (_secret("c", cert=CERT, key=KEY) + _secret("c-cacert", cacert=CA), CA),  # split
    (_secret("c", cert=CERT, key=KEY, cacert=b"x") + _secret("c-cacert", cacert=CA), CA),
])
def test_mutual_takes_the_credentials_ca_as_istio_reads_secrets(secrets: str, ca: bytes) -> None:
    """Key formats: ca.crt or cacert in the Secret, or a `<name>-cacert` Secret (which takes
    precedence, secrets_test.go "overlap-cacert")."""
    listener, _ = _listener(secrets + _gateway("{mode: MUTUAL, credentialName: c}"))
    assert listener is not None and listener.tls is not None
    assert (listener.tls.mode, listener.tls.cert_pem, listener.tls.key_pem,
            listener.tls.ca_pem) == ("MUTUAL", CERT, KEY, ca)


@pytest.mark.parametrize(("secrets", "said"), [
    ("", "secret default/c not found"),
    (_secret("c", cert=CERT, key=KEY), "no client CA"),
    (_secret("c", tls_crt=b"", tls_key=KEY), "but they were empty"),
    (_secret("c", tls_crt=b"junk", tls_key=KEY, ca_crt=CA), "tls.crt is not a PEM"),
    (_secret("c", cert=CERT, key=b"junk", cacert=CA), "key is not a PEM key"),
    (_secret("c", foo=CERT), "found: foo"),
])
def test_a_missing_or_malformed_credential_leaves_the_server_out_with_a_note(
        secrets: str, said: str) -> None:
    listener, snap = _listener(secrets + _gateway("{mode: MUTUAL, credentialName: c}"))
    assert listener is None
    assert any(said in note for note in snap.notes), snap.notes


def test_protocol_range_defaults_to_tls12_and_unknown_ciphers_are_ignored() -> None:
    """minProtocolVersion: "By default, it is TLSV1_2"; Istio ignores invalid cipher suites
    (validateTLSOptions) and configures the others (filteredGatewayCipherSuites)."""
    files = "serverCertificate: /c.pem, privateKey: /k.pem"
    listener, _ = _listener(_gateway(f"{{mode: SIMPLE, {files}}}"))
    assert listener is not None and listener.tls is not None
    assert (listener.tls.min_version, listener.tls.max_version) == ("TLSV1_2", "TLSV1_3")
    listener, _ = _listener(_gateway(
        f"{{mode: SIMPLE, {files}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLS_AUTO, "
        "cipherSuites: [NOPE, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]}"))
    assert listener is not None and listener.tls is not None
    assert (listener.tls.min_version, listener.tls.max_version) == ("TLSV1_3", "TLSV1_3")
    assert listener.tls.ciphers == ("ECDHE-RSA-AES128-GCM-SHA256",)


def test_servers_on_one_port_keep_their_order_and_sni_names() -> None:
    text = _secret("a", cert=CERT, key=KEY) + _secret("b", cert=CERT, key=KEY) + """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 443, name: a, protocol: HTTPS}, hosts: [ns/a.example], tls: {mode: SIMPLE, credentialName: a}}
  - {port: {number: 443, name: b, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: b}}
---
"""  # noqa: E501
    listener, _ = _listener(text)
    assert listener is not None
    assert [s.server_names for s in listener.tls_servers] == [("a.example",), ()]
    assert listener.tls == listener.tls_servers[0]
    assert decode_value(encode_value(listener)) == listener  # through the wire


def test_sni_picks_exact_then_longest_wildcard_then_a_server_without_names() -> None:
    """envoyproxy.io FilterChainMatch.server_names: www.example.com is matched against
    www.example.com, then *.example.com, then *.com; no match: a chain without names."""
    exact = ListenerTls(server_names=("www.example.com",), server="exact")
    near = ListenerTls(server_names=("*.example.com",), server="near")
    far = ListenerTls(server_names=("*.com",), server="far")
    anything = ListenerTls(server="any")
    assert pick([far, near, exact], "www.example.com") is exact
    assert pick([far, near, exact], "a.b.example.com") is near
    assert pick([far, near, exact], "shop.com") is far
    assert pick([far, near, exact], "example.org") is None
    assert pick([far, near, exact], None) is None  # no SNI, every server names hosts
    assert pick([exact, anything], None) is anything
    assert pick([exact, anything], "other.org") is anything


def _client_hello(sni: str | None) -> bytes:
    """A real ClientHello, as Python's ssl writes it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    context.check_hostname = sni is not None
    obj = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_client_hello_sni_reads_the_server_name_without_io() -> None:
    hello = _client_hello("Shop.Example")
    assert client_hello_sni(hello) == "shop.example"
    assert client_hello_sni(_client_hello(None)) is None
    assert client_hello_sni(hello[:40]) is INCOMPLETE
    assert client_hello_sni(b"GET / HTTP/1.1\r\n") is None


def test_apply_reports_only_what_gateway_tls_still_does_not_do() -> None:
    text = _gateway("{mode: MUTUAL, credentialName: c, minProtocolVersion: TLSV1_2, "
                    "cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, BOGUS], "
                    "subjectAltNames: [client.example]}")
    resource = load_text(text).resources[0]
    paths = {finding.path for finding in findings(resource)}
    assert paths == {"spec.servers[0].tls.cipherSuites[1]", "spec.servers[0].tls.subjectAltNames"}
    passthrough = load_text(_gateway("{mode: PASSTHROUGH}").replace("HTTPS", "TLS")).resources[0]
    assert {f.path for f in findings(passthrough)} == {"spec.servers[0].tls.mode"}
