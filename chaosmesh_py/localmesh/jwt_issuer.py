"""A JWT issuer for the local mesh: an RSA key pair and its JWKS served over HTTP.

What Istio's JWT task uses ``testing@secure.istio.io`` and its published ``jwks.json`` for:
RequestAuthentications on the local mesh name ``ISSUER`` and ``jwks_uri`` (fetched by the local
istiod, ``chaosmesh_py.localmesh.jwks``), and experiments and tests mint tokens with the private
key (``chaosmesh_py.security.tokens``). The mesh's info names the three (``info``); the key stays
in its file (mode 0600, in the mesh's state directory; a mesh started again on the same
directory reuses it, so tokens minted earlier still verify), never printed.

Served on 127.0.0.1: ``GET /jwks.json`` (the public key, ``kid`` = its RFC 7638 thumbprint) and
nothing else (404).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://issuer.chaosmesh.local"
JWKS_PATH = "/jwks.json"
KEY_FILE = "issuer-key.pem"
LOCALHOST = "127.0.0.1"


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The issuer's key at ``path``, created (RSA 2048, 0600) when absent."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # Created 0600 in one call: the key is never readable by others, not even for an instant.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return key


def public_jwks(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The JWKS of ``key``'s public half: one RS256 signing key."""
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"use": "sig", "alg": "RS256"})
    jwk["kid"] = _thumbprint(jwk)
    return {"keys": [jwk]}


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members, base64url."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class JwtIssuer:
    """Serve the JWKS of the key in ``state_dir`` on 127.0.0.1:``port`` (0: any free port)."""

    def __init__(self, state_dir: Path, port: int = 0) -> None:
        self.private_key_file = state_dir / KEY_FILE
        self._key = load_or_create_key(self.private_key_file)
        body = json.dumps(public_jwks(self._key), sort_keys=True).encode()
        self._server = ThreadingHTTPServer((LOCALHOST, port), _handler(body))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def jwks_uri(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    def info(self) -> dict[str, str]:
        """What the mesh's info publishes (the key's path, never the key)."""
        return {
            "issuer": ISSUER,
            "jwks_uri": self.jwks_uri,
            "private_key_file": str(self.private_key_file),
        }

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="jwt-issuer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def _handler(body: bytes) -> type[BaseHTTPRequestHandler]:
    class JwksHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != JWKS_PATH:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return JwksHandler
