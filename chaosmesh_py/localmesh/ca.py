"""The local mesh's certificate authority, as istiod's CA: one root, a certificate per workload.

istiod signs each proxy's certificate signing request with its root (``istio-ca-root-cert``),
and the proxy's agent hands the certificate to Envoy by SDS. The local mesh has no agent and no
CSR flow: the mesh itself creates each workload's key and has it signed here, then writes both
where Envoy's file-based SDS reads them (``chaosmesh_py.localmesh.identities``).

Certificates as Istio's:
    root          self-signed, ``O=cluster.local`` (the trust domain), a CA for 10 years; its
                  private key lives in this object only, never on disk, so nothing outside the
                  mesh process can sign a certificate the mesh trusts.
    workload      no subject, one URI SAN ``spiffe://cluster.local/ns/<ns>/sa/<sa>`` (critical,
                  as for an empty subject), key usage digital signature + key encipherment,
                  extended key usage server and client auth, 24 h (Istio's default
                  ``DEFAULT_WORKLOAD_CERT_TTL``). Keys are ECDSA P-256 (Istio's default is RSA
                  2048; ECDSA is Istio's ``ECC_SIGNATURE_ALGORITHM`` option, and far cheaper).
    expired       the same, with ``notAfter`` an hour in the past: what a proxy holds when
                  nothing renewed it, which every peer refuses in the handshake.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chaosmesh_py.istio.identity import TRUST_DOMAIN
from chaosmesh_py.localmesh.credentials import key_usage

WORKLOAD_CERTIFICATE_TTL = datetime.timedelta(hours=24)
ROOT_TTL = datetime.timedelta(days=3650)
# A little in the past: a clock a few seconds behind must not find a certificate from the future.
CLOCK_SKEW = datetime.timedelta(minutes=5)
EXPIRED_AGO = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class WorkloadCertificate:
    """One workload's certificate and key (PEM). The key is a secret: never in a repr or a log."""

    spiffe_id: str
    serial: int
    not_before: datetime.datetime
    not_after: datetime.datetime
    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)

    @property
    def serial_hex(self) -> str:
        """The serial as Envoy prints it (``%DOWNSTREAM_PEER_SERIAL%``): lowercase hex."""
        return f"{self.serial:x}"

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or _now()) >= self.not_after


class LocalCA:
    """A root made at construction, and ``issue`` for workload certificates signed by it."""

    def __init__(
        self,
        trust_domain: str = TRUST_DOMAIN,
        ttl: datetime.timedelta = WORKLOAD_CERTIFICATE_TTL,
    ) -> None:
        self.trust_domain = trust_domain
        self.ttl = ttl
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
        public = self._key.public_key()
        now = _now()
        self.root = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + ROOT_TTL)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(key_usage(signs_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def issue(self, spiffe_id: str, *, expired: bool = False) -> WorkloadCertificate:
        """A fresh key and certificate for ``spiffe_id``, valid for ``ttl`` from now, or (with
        ``expired``) one whose validity ended an hour ago."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        if expired:
            not_before, not_after = now - EXPIRED_AGO - self.ttl, now - EXPIRED_AGO
        else:
            not_before, not_after = now - CLOCK_SKEW, now + self.ttl
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self._name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_workload_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return WorkloadCertificate(
            spiffe_id=spiffe_id,
            serial=certificate.serial_number,
            not_before=not_before,
            not_after=not_after,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def _workload_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
