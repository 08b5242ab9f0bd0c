"""Mutual TLS between the local mesh's sidecars, through the real Envoy: each caller presents its
own workload certificate (istiod's SPIFFE identity), the destination's inbound reports it in
``x-forwarded-client-cert`` (httpbin echoes it), PeerAuthentication picks the inbound's filter
chains, auto mTLS and DestinationRule ``tls.mode`` pick the client's, and certificate states set
through the API reach Envoy without a restart."""

import http.client
import json
import socket
import ssl
import time
from urllib.parse import urlsplit

import pytest

from chaosmesh_py.istio.identity import spiffe_id
from chaosmesh_py.localmesh.mtls import workload_secret
from tests.local.test_no_sidecar import peer_authentication, served_by
from tests.local.test_telemetry import increase, scrape

pytestmark = pytest.mark.slow

HTTPBIN = "httpbin:8000"
NS = "bookinfo"


def request(url, path="/headers", host=HTTPBIN, connection=None):
    """(status, body) of one GET; on ``connection`` (kept alive) when given."""
    parts = urlsplit(url)
    own = connection is None
    connection = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        if own:
            connection.close()


def client_certificate(body):
    """What httpbin's inbound said of the caller: the ``x-forwarded-client-cert`` fields."""
    header = json.loads(body)["headers"].get("x-forwarded-client-cert")
    if header is None:
        return None
    return dict(part.split("=", 1) for part in header.split(";"))


def sidecar(mesh, workload):
    return mesh.info()["workloads"][workload]["sidecar_url"]


def test_each_sidecar_calls_with_its_own_workload_identity(mesh):
    info = mesh.info()
    assert info["workloads"]["reviews-v2"]["service_account"] == "bookinfo-reviews"
    assert info["workloads"]["reviews-v2"]["principal"] == (
        "cluster.local/ns/bookinfo/sa/bookinfo-reviews"
    )
    assert info["workloads"]["sleep"]["principal"] == "cluster.local/ns/bookinfo/sa/sleep"
    for workload, account in [("sleep", "sleep"), ("reviews-v2", "bookinfo-reviews")]:
        status, body = request(sidecar(mesh, workload))
        assert status == 200
        seen = client_certificate(body)
        assert seen["URI"] == spiffe_id(NS, account)
        assert seen["By"] == spiffe_id(NS, "httpbin")  # the server's own identity
    # An entry URL calls as a pod of its namespace running as "default".
    status, body = request(info["services"]["httpbin"]["url"])
    assert client_certificate(body)["URI"] == spiffe_id(NS, "default")
    # A client without a sidecar presents nothing (PERMISSIVE lets it in).
    status, body = request(info["workloads"]["httpbin-v1"]["pod_url"])
    assert status == 200 and client_certificate(body) is None


def test_pooled_connections_are_never_shared_across_identities(mesh):
    """Two callers, each on one kept-alive connection to its sidecar, take turns to one
    destination over the same shared cluster: each request arrives with its own caller's
    certificate, so no upstream connection carried the other's."""
    connections = {
        workload: http.client.HTTPConnection(*_address(sidecar(mesh, workload)), timeout=5)
        for workload in ("sleep", "reviews-v2")
    }
    expected = {"sleep": spiffe_id(NS, "sleep"), "reviews-v2": spiffe_id(NS, "bookinfo-reviews")}
    cluster = "outbound|8000||httpbin.bookinfo.svc.cluster.local"
    before = mesh.envoy.stats(f"^cluster\\.{_escaped(cluster)}\\.upstream_cx_total$")
    try:
        for _ in range(10):
            for workload, connection in connections.items():
                status, body = request("", connection=connection)
                assert status == 200
                assert client_certificate(body)["URI"] == expected[workload]
    finally:
        for connection in connections.values():
            connection.close()
    after = mesh.envoy.stats(f"^cluster\\.{_escaped(cluster)}\\.upstream_cx_total$")
    opened = sum(after.values()) - sum(before.values())
    # Each identity has its pool (up to one connection per httpbin pod): 20 requests, few
    # connections. Not "at least one per identity": earlier tests' pooled connections (sleep
    # calls httpbin in many) may serve them; the certificates above are the proof.
    assert opened <= 8


def test_strict_refuses_plain_text_and_sidecars_still_pass(mesh):
    peer_authentication(mesh, "default", NS, "STRICT")
    info = mesh.info()
    assert served_by(info["workloads"]["ratings-v1"]["pod_url"], "/ratings/0", requests=2) == {
        "refused": 2
    }
    assert served_by(info["services"]["ratings"]["no_sidecar_url"], "/ratings/0", requests=2) == {
        "refused": 2
    }
    status, body = request(sidecar(mesh, "reviews-v2"), "/ratings/0", host="ratings:9080")
    assert status == 200, body
    status, body = request(sidecar(mesh, "sleep"))
    assert client_certificate(body)["URI"] == spiffe_id(NS, "sleep")
    # Bookinfo end to end: ingress -> productpage -> reviews -> ratings, all in mutual TLS.
    status, body = request(info["ingress_url"], "/productpage", host="bookinfo")
    assert status == 200 and b"Error fetching product reviews" not in body


def test_a_workload_policy_overrides_its_namespace_and_port_level_overrides_both(mesh):
    peer_authentication(mesh, "default", NS, "STRICT")
    peer_authentication(mesh, "httpbin-v1", NS, "PERMISSIVE", {"app": "httpbin", "version": "v1"})
    mesh.api.create(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "httpbin-v2", "namespace": NS},
            "spec": {
                "selector": {"matchLabels": {"app": "httpbin", "version": "v2"}},
                "mtls": {"mode": "STRICT"},
                "portLevelMtls": {"8000": {"mode": "PERMISSIVE"}},
            },
        }
    )
    mesh.sync()
    workloads = mesh.info()["workloads"]
    assert request(workloads["httpbin-v1"]["pod_url"])[0] == 200  # workload over namespace
    assert request(workloads["httpbin-v2"]["pod_url"])[0] == 200  # its port over the workload
    assert served_by(workloads["ratings-v1"]["pod_url"], "/ratings/0", requests=1) == {"refused": 1}


def test_auto_mtls_sends_plain_text_where_the_namespace_disables_mtls(mesh):
    peer_authentication(mesh, "default", NS, "DISABLE")
    before = scrape(mesh)
    status, body = request(sidecar(mesh, "sleep"))
    assert status == 200
    assert client_certificate(body) is None  # plain text: no certificate reached httpbin
    # Istio's metrics say so: the destination reports no mutual TLS, and no principals.
    by = ("connection_security_policy", "source_principal", "destination_principal")
    reported = increase(
        before, scrape(mesh), "istio_requests_total", by,
        reporter="destination", source_workload="sleep", destination_service_name="httpbin",
    )  # fmt: skip
    assert reported == {("none", "unknown", "unknown"): 1}
    cluster = _cluster(mesh, "outbound|8000||httpbin.bookinfo.svc.cluster.local")
    assert "transport_socket_matches" not in cluster


def test_a_workload_disabling_mtls_under_auto_mtls_breaks_its_callers_until_a_rule_says_so(mesh):
    """Istio's trap: auto mTLS infers from namespace and mesh policies only, so a workload-level
    DISABLE is still sent TLS (503), until a DestinationRule sets ``tls.mode: DISABLE``."""
    peer_authentication(mesh, "httpbin", NS, "DISABLE", {"app": "httpbin"})
    status, body = request(sidecar(mesh, "sleep"))
    assert status == 503, body
    assert b"upstream connect error" in body
    assert request(mesh.info()["workloads"]["httpbin-v1"]["pod_url"])[0] == 200
    mesh.api.create(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "httpbin", "namespace": NS},
            "spec": {"host": "httpbin", "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
        }
    )
    mesh.sync()
    status, body = request(sidecar(mesh, "sleep"))
    assert status == 200 and client_certificate(body) is None


def test_a_subset_may_ask_for_istio_mutual_where_the_namespace_disables(mesh):
    peer_authentication(mesh, "default", NS, "DISABLE")
    mesh.api.create(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "httpbin", "namespace": NS},
            "spec": {
                "host": "httpbin",
                "subsets": [
                    {"name": "v1", "labels": {"version": "v1"},
                     "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
                    {"name": "v2", "labels": {"version": "v2"}},
                ],
            },
        }
    )  # fmt: skip
    mesh.sync()
    v1 = _cluster(mesh, "outbound|8000|v1|httpbin.bookinfo.svc.cluster.local")
    v2 = _cluster(mesh, "outbound|8000|v2|httpbin.bookinfo.svc.cluster.local")
    assert "transport_socket_matches" in v1 and "transport_socket_matches" not in v2
    tls = v1["transport_socket_matches"][0]["transport_socket"]["typed_config"]
    assert tls["sni"] == "outbound_.8000_.v1_.httpbin.bookinfo.svc.cluster.local"
    assert tls["common_tls_context"]["alpn_protocols"] == ["istio-peer-exchange", "istio"]
    sans = tls["common_tls_context"]["combined_validation_context"]["default_validation_context"]
    assert sans["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": spiffe_id(NS, "httpbin")}}
    ]


def certificate_state(mesh, name, selector, state):
    mesh.api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": {"security.chaosmesh.io/certificate": "true"},
            },
            "data": {"selector": json.dumps(selector), "state": state},
        }
    )
    mesh.sync()


def test_an_expired_certificate_fails_its_callers_until_the_state_is_deleted(mesh):
    url = sidecar(mesh, "reviews-v2")
    assert request(url, "/ratings/0", host="ratings:9080")[0] == 200  # a pooled connection
    certificate_state(mesh, "ratings-expired", {"app": "ratings"}, "expired")
    secret = workload_secret(NS, mesh.info()["workloads"]["ratings-v1"]["pod"])
    assert mesh.info()["workloads"]["ratings-v1"]["certificate_secret"] == secret
    assert mesh.identities.certificate(secret).expired()
    # Envoy's own gauge says so, by the secret's name.
    expiry = mesh.envoy.stats(rf"ssl\.certificate\.{secret}\.expiration_unix_time_seconds$")
    assert expiry and max(expiry.values()) < time.time()
    # Every ratings cluster (reviews calls subset v1): the peer certificates they refused.
    refusals = (
        r"^cluster\.outbound\|9080\|[^|]*\|ratings\.bookinfo\.svc\.cluster\.local"
        r"\.ssl\.fail_verify_error$"
    )
    before = sum(mesh.envoy.stats(refusals).values())
    status, body = request(url, "/ratings/0", host="ratings:9080")
    # Envoy's words: the connection failed (each retry's handshake too), as on a cluster.
    assert status == 503, body
    assert b"upstream connect error or disconnect/reset before headers" in body
    assert b"remote connection failure" in body
    # ...because the client refused ratings' certificate (expired): no byte reached ratings.
    assert sum(mesh.envoy.stats(refusals).values()) >= before + 1
    mesh.api.delete("v1", "ConfigMap", NS, "ratings-expired")
    mesh.sync()
    assert not mesh.identities.certificate(secret).expired()
    assert request(url, "/ratings/0", host="ratings:9080")[0] == 200


def test_a_rotated_certificate_is_served_at_once_and_calls_keep_working(mesh, tmp_path):
    workload = mesh.info()["workloads"]["ratings-v1"]
    secret = workload_secret(NS, workload["pod"])
    first = mesh.identities.certificate(secret)
    assert _served_serial(mesh, workload["pod_url"], tmp_path) == first.serial
    certificate_state(mesh, "ratings-rotated", {"app": "ratings"}, "rotated")
    rotated = mesh.identities.certificate(secret)
    assert rotated.serial != first.serial and rotated.spiffe_id == first.spiffe_id
    assert not rotated.expired()
    assert _served_serial(mesh, workload["pod_url"], tmp_path) == rotated.serial
    status, _ = request(sidecar(mesh, "reviews-v2"), "/ratings/0", host="ratings:9080")
    assert status == 200
    mesh.api.delete("v1", "ConfigMap", NS, "ratings-rotated")


def _served_serial(mesh, pod_url, tmp_path, timeout_s=10.0):
    """The serial of the certificate the pod's inbound serves to a new mTLS client (one the
    mesh's CA signed for ``sleep``), once Envoy has read the file SDS points at."""
    client = mesh.ca.issue(spiffe_id(NS, "sleep"))
    (tmp_path / "root.pem").write_bytes(mesh.ca.root_pem)
    (tmp_path / "client.pem").write_bytes(client.certificate_pem)
    (tmp_path / "client.key").write_bytes(client.private_key_pem)
    context = ssl.create_default_context(cafile=tmp_path / "root.pem")
    context.check_hostname = False  # a workload certificate names a URI, no host
    context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    context.set_alpn_protocols(["istio"])  # what the PERMISSIVE TLS chain matches
    from cryptography import x509

    deadline = time.monotonic() + timeout_s
    wanted = mesh.identities.certificate(workload_secret(NS, _pod(mesh, pod_url))).serial
    while True:
        with (
            socket.create_connection(_address(pod_url), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        serial = x509.load_der_x509_certificate(der).serial_number
        if serial == wanted or time.monotonic() > deadline:
            return serial
        time.sleep(0.05)


def _pod(mesh, pod_url):
    (pod,) = [w["pod"] for w in mesh.info()["workloads"].values() if w["pod_url"] == pod_url]
    return pod


def _cluster(mesh, name):
    for item in mesh.envoy.config_dump("dynamic_active_clusters")["configs"]:
        if item["cluster"]["name"] == name:
            return item["cluster"]
    raise AssertionError(f"no cluster {name}")


def _address(url):
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _escaped(name):
    return name.replace("|", "\\|").replace(".", "\\.")


def _secret_files(mesh, pod):
    """The SDS file holding ``pod``'s key (its directory is named after the secret)."""
    return list((mesh.envoy.work_dir / "sds").glob(f"default_bookinfo_{pod}-*/secret.json"))


def test_keys_are_owner_only_and_a_deleted_pods_key_leaves_the_disk(mesh):
    pod = mesh.info()["workloads"]["details-v1"]["pod"]
    (path,) = _secret_files(mesh, pod)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert "PRIVATE KEY" in path.read_text()
    mesh.api.delete("v1", "Pod", NS, pod)
    deadline = time.monotonic() + 20
    while mesh.info()["workloads"]["details-v1"]["pod"] in (pod, None):
        assert time.monotonic() < deadline, "no replacement pod"
        time.sleep(0.1)
    mesh.sync()
    assert not _secret_files(mesh, pod)
    (replacement,) = _secret_files(mesh, mesh.info()["workloads"]["details-v1"]["pod"])
    assert replacement.stat().st_mode & 0o777 == 0o600
    status, _ = request(sidecar(mesh, "productpage-v1"), "/details/0", host="details:9080")
    assert status == 200
