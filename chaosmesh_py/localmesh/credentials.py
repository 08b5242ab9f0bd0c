"""The local API's credentials: its own CA, a server certificate for 127.0.0.1, a bearer token.

Every local mesh makes fresh ones when it starts, in a 0700 directory, each file 0600 from its
first byte:

    ca.crt       the CA clients trust (the kubeconfig's ``certificate-authority-data``)
    server.crt   the API server's certificate (IP 127.0.0.1, DNS localhost), signed by the CA
    server.key   its private key
    token        the bearer token every request must carry (the kubeconfig user's ``token``)

The CA's private key is never written: once the server certificate is signed, nobody can issue
another certificate clients of this mesh would trust. A plain-HTTP API would do neither job:
anyone on the machine could call it, and kubectl sends no bearer token to an ``http://`` server.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosmesh_py.engine import private_file

CERTIFICATE_DAYS = 365


@dataclass(frozen=True)
class Credentials:
    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert_file(self) -> Path:
        return self.directory / "server.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "server.key"

    @property
    def token_file(self) -> Path:
        return self.directory / "token"

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()


def _write(path: Path, data: bytes) -> None:
    private_file.write_private(path, data, "--state-dir")


def key_usage(*, signs_certificates: bool) -> Any:
    """A CA signs certificates; a server signs its handshakes. Strict verifiers (Go, Python
    3.13's VERIFY_X509_STRICT) insist on the extension."""
    from cryptography import x509

    flags = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        **flags,
    )


def issue(directory: Path) -> Credentials:
    """Fresh credentials in ``directory`` (created 0700)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    now = datetime.datetime.now(datetime.UTC)
    # A little in the past: a clock a few seconds behind must not find the certificate future.
    not_before, not_after = (
        now - datetime.timedelta(minutes=5),
        now + datetime.timedelta(days=CERTIFICATE_DAYS),
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chaosmesh-local CA")])
    ca_public = ca_key.public_key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_public), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_public = server_key.public_key()
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chaosmesh-local")]))
        .issuer_name(ca_name)
        .public_key(server_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    credentials = Credentials(directory)
    pem = serialization.Encoding.PEM
    _write(credentials.ca_file, ca.public_bytes(pem))
    _write(credentials.cert_file, server.public_bytes(pem))
    _write(
        credentials.key_file,
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write(credentials.token_file, secrets.token_urlsafe(32).encode())
    return credentials
