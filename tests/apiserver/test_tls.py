"""The double over HTTPS: a real handshake, the certificate a client must trust, clean stops.

`certificates` makes a throwaway CA and a server certificate for 127.0.0.1 with the `openssl`
command line, so nothing but the standard library and openssl is needed; the integration tests
of TLS verification import it from here.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import ISTIO_CRDS, NETWORKING, virtual_service

VS = (*NETWORKING, "default", "virtualservices")


class Certificates(NamedTuple):
    ca: Path  # the CA a client must trust
    cert: Path  # the server's certificate, signed by `ca`, for IP 127.0.0.1 only
    key: Path


def certificates(directory: Path) -> Certificates:
    """A self-signed CA and a server certificate it signed (subjectAltName IP:127.0.0.1)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line is needed to make test certificates")
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, request = (directory / f"server.{end}" for end in ("crt", "key", "csr"))
    extensions = directory / "server.ext"
    # What strict verifiers (Python 3.13's VERIFY_X509_STRICT) insist on: key usages, key ids.
    extensions.write_text(
        "subjectAltName = IP:127.0.0.1\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    make_ca = [
        *("req", "-x509", *new_key, "-keyout", ca_key, "-out", ca, "-days", "2"),
        *("-subj", "/CN=chaosmesh test CA", "-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    ]
    request_cert = ["req", *new_key, "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1"]
    sign_cert = [
        *("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"),
        *("-out", cert, "-days", "2", "-extfile", extensions),
    ]
    for command in (make_ca, request_cert, sign_cert):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return Certificates(ca, cert, key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_server(certs: Certificates) -> Iterator[ApiServer]:
    with ApiServer(crd_paths=[ISTIO_CRDS], tls=(certs.cert, certs.key)) as server:
        yield server


@pytest.fixture
def secure(https_server: ApiServer) -> Iterator[ApiServer]:
    https_server.reset()
    yield https_server
    https_server.clear_faults()


def custom_objects(
    server: ApiServer, ca: Path | None
) -> tuple[kubernetes.client.ApiClient, kubernetes.client.CustomObjectsApi]:
    configuration = kubernetes.client.Configuration(host=server.url)
    configuration.ssl_ca_cert = None if ca is None else str(ca)
    configuration.retries = False
    api_client = kubernetes.client.ApiClient(configuration)
    return api_client, kubernetes.client.CustomObjectsApi(api_client)


def wait_for(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    """The server records a failed handshake in its own thread, just after the client gave up."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_serves_https_to_a_client_that_trusts_its_ca(secure: ApiServer, certs: Certificates):
    assert secure.url.startswith("https://127.0.0.1:")
    api_client, custom = custom_objects(secure, certs.ca)
    with api_client:
        custom.create_namespaced_custom_object(*VS, virtual_service())
        got = custom.get_namespaced_custom_object(*VS, "reviews")
    assert got["spec"]["hosts"] == ["reviews"]
    assert [(r.method, r.status) for r in secure.request_log] == [("POST", 201), ("GET", 200)]
    assert secure.tls_rejections == []


def test_a_client_without_the_ca_refuses_and_the_server_records_it(
    secure: ApiServer, certs: Certificates
):
    api_client, custom = custom_objects(secure, None)
    with api_client, pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object(*VS)
    assert caught.value.status == 0
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value.reason)
    wait_for(lambda: secure.tls_rejections)
    assert secure.tls_rejections == ["TLSV1_ALERT_UNKNOWN_CA"]
    assert secure.request_log == []  # no request was read: the handshake never finished

    api_client, custom = custom_objects(secure, certs.ca)  # and the server is still serving
    with api_client:
        assert custom.list_namespaced_custom_object(*VS)["items"] == []


def test_a_client_stuck_before_its_handshake_blocks_no_one(secure: ApiServer, certs: Certificates):
    """Handshakes run in the request threads, not in the accept loop."""
    host, port = secure.url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5):  # connects, says nothing
        api_client, custom = custom_objects(secure, certs.ca)
        started = time.monotonic()
        with api_client:
            custom.list_namespaced_custom_object(*VS)
        assert time.monotonic() - started < 1


def test_stop_closes_idle_tls_keep_alive_connections(certs: Certificates) -> None:
    server = ApiServer(crd_paths=[ISTIO_CRDS], tls=(certs.cert, certs.key)).start()
    host, port = server.url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(certs.ca))
    connection = http.client.HTTPSConnection(host, int(port), timeout=5, context=context)
    connection.request("GET", "/version")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    assert response.getheader("Connection") != "close"  # kept alive, over TLS
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert connection.sock is not None
    assert connection.sock.recv(1) == b""  # closed by the server, not left hanging
    connection.close()
