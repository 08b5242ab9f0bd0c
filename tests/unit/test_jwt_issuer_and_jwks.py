"""The local mesh's JWT issuer and the local istiod's JWKS fetching, over real HTTP on 127.0.0.1."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest

from chaosmesh_py.localmesh import jwks as jwks_module
from chaosmesh_py.localmesh.jwks import JwksResolver, is_jwks
from chaosmesh_py.localmesh.jwt_issuer import ISSUER, JwtIssuer


@pytest.fixture
def issuer(tmp_path):
    running = JwtIssuer(tmp_path / "jwt")
    running.start()
    yield running
    running.stop()


def test_the_issuers_jwks_verifies_a_token_signed_with_its_key(issuer):
    info = issuer.info()
    assert info["issuer"] == ISSUER
    assert os.stat(info["private_key_file"]).st_mode & 0o777 == 0o600
    key = Path(info["private_key_file"]).read_bytes()
    token = jwt.encode(
        {"iss": ISSUER, "sub": "alice", "exp": int(time.time()) + 60}, key, algorithm="RS256"
    )
    (served,) = JwksResolver().resolve([info["jwks_uri"]]).values()
    assert served is not None
    (public,) = jwt.PyJWKSet.from_json(served).keys
    claims = jwt.decode(token, public.key, algorithms=["RS256"], issuer=ISSUER)
    assert claims["sub"] == "alice"
    assert "d" not in json.loads(served)["keys"][0]  # the public half only


def test_the_key_is_kept_across_restarts(tmp_path):
    first = JwtIssuer(tmp_path)
    second = JwtIssuer(tmp_path)
    try:
        assert first.private_key_file.read_bytes() == second.private_key_file.read_bytes()
    finally:
        first.stop()
        second.stop()


class MutableJwks:
    """A server whose answer a test changes: a JWKS, something else, or an error status."""

    def __init__(self):
        self.body = b'{"keys": [{"kty": "oct"}]}'
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served():
    server = MutableJwks()
    yield server
    server.close()


def test_fetched_once_then_cached_and_refresh_reports_a_change(served):
    resolver = JwksResolver()
    assert resolver.resolve([served.uri]) == {served.uri: served.body.decode()}
    served.body = b'{"keys": []}'
    assert resolver.resolve([served.uri]) == {served.uri: '{"keys": [{"kty": "oct"}]}'}
    assert resolver.refresh() is True
    assert resolver.resolve([served.uri]) == {served.uri: '{"keys": []}'}
    assert resolver.refresh() is False


def test_failures_resolve_to_none_and_are_tried_again(served, monkeypatch):
    monkeypatch.setattr(jwks_module, "RETRY_FAILED_AFTER_S", 0.0)
    resolver = JwksResolver(timeout_s=1.0)
    served.body = b"<html>not a jwks</html>"
    assert resolver.resolve([served.uri]) == {served.uri: None}
    served.status, served.body = 500, b'{"keys": []}'
    assert resolver.resolve([served.uri]) == {served.uri: None}
    served.status = 200
    assert resolver.resolve([served.uri]) == {served.uri: '{"keys": []}'}
    assert resolver.resolve(["http://127.0.0.1:1/jwks.json"]) == {
        "http://127.0.0.1:1/jwks.json": None
    }


def test_is_jwks_is_istiods_format_check():
    assert is_jwks('{"keys": []}')
    assert not is_jwks('{"keys": {}}')
    assert not is_jwks("[]")
    assert not is_jwks("nope")
