"""Who may use the local mesh: its API only with its token, Envoy's admin only its owner.

Another local user can connect to 127.0.0.1 like anyone: every path of the API (the double's
control endpoints included) must answer 401 without the mesh's token or with a wrong one, and
leave the store as it was. What clients need to know about the mesh comes through the API
itself, an ordinary ConfigMap, never a private path.
"""

from __future__ import annotations

import http.client
import json
import ssl
from urllib.parse import urlsplit

import pytest

from chaosmesh_py.kube import Kube

V1 = "networking.istio.io/v1"
VS = "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices"
EVERY_PATH = [
    ("GET", "/version", None),
    ("GET", "/api", None),
    ("GET", "/api/v1", None),
    ("GET", "/apis", None),
    ("GET", "/apis/networking.istio.io/v1", None),
    ("GET", "/api/v1/namespaces", None),
    ("DELETE", "/api/v1/namespaces/bookinfo", None),
    ("GET", "/api/v1/namespaces/istio-system/configmaps/chaosmesh-local-mesh", None),
    ("GET", VS, None),
    ("GET", f"{VS}?watch=true", None),
    ("GET", f"{VS}/ratings", None),
    ("PATCH", f"{VS}/ratings", {"spec": {"http": []}}),
    ("DELETE", f"{VS}/ratings", None),
    ("POST", VS, {"metadata": {"name": "x"}, "spec": {"hosts": ["x"]}}),
    ("GET", "/chaosmesh/v1/api-faults", None),
    ("POST", "/chaosmesh/v1/api-faults", {"status": 503, "times": 1000}),
    ("DELETE", "/chaosmesh/v1/api-faults", None),
    ("POST", "/chaosmesh/v1/reset", None),
    ("GET", "/chaosmesh/v1/mesh", None),  # the private path the core once read
    ("GET", "/no/such/path", None),
]


def request(url, method, path, body=None, *, token=None, verify=None):
    """One HTTPS request, as any local program could send it (verify: a CA file, or none)."""
    context = ssl.create_default_context(cafile=verify)
    if verify is None:  # another local user need not trust the CA to connect
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    address = urlsplit(url)
    connection = http.client.HTTPSConnection(
        address.hostname, address.port, context=context, timeout=10
    )
    headers = {"Content-Type": "application/merge-patch+json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("method", "path", "body"), EVERY_PATH)
@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_every_path_answers_401_without_the_token(mesh, method, path, body, token):
    before = mesh.api.list(V1, "VirtualService", "bookinfo")
    status, answer = request(mesh.api.url, method, path, body, token=token)
    assert status == 401, answer
    assert json.loads(answer)["reason"] == "Unauthorized"
    assert mesh.api.list(V1, "VirtualService", "bookinfo") == before
    assert mesh.api.faults.pending() == []


def test_the_api_is_tls_only_and_trusted_through_the_mesh_ca(mesh):
    credentials = mesh.credentials
    assert mesh.api.url.startswith("https://127.0.0.1:")
    address = urlsplit(mesh.api.url)
    plain = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        plain.request("GET", "/version")
        plain.getresponse()
    plain.close()
    status, _ = request(
        mesh.api.url, "GET", "/version", token=credentials.token, verify=credentials.ca_file
    )
    assert status == 200
    for path in (credentials.token_file, credentials.key_file, credentials.ca_file):
        assert path.stat().st_mode & 0o777 == 0o600
    assert credentials.directory.stat().st_mode & 0o777 == 0o700


def test_the_mesh_publishes_itself_through_the_api(mesh):
    credentials = mesh.credentials
    kube = Kube.at(mesh.api.url, token=credentials.token, ca_file=str(credentials.ca_file))
    published = kube._read_local_mesh()  # uncached: this session's mesh, read now
    assert published is not None
    assert published["instance_id"] == mesh.instance_id
    assert len(mesh.instance_id) == 32
    assert published["envoy_admin_socket"] == str(mesh.envoy.admin_socket)
    assert published["workloads"] == json.loads(json.dumps(mesh.info()["workloads"]))
    # Without the token there is nothing to read: not a local mesh, as far as the client knows.
    anonymous = Kube.at(mesh.api.url, ca_file=str(credentials.ca_file))
    assert anonymous._read_local_mesh() is None
