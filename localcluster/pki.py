"""Certificates and keys for a throwaway control plane on 127.0.0.1, made fresh for every run."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)
"""Long enough for a local cluster `make up` leaves running; every e2e run makes its own."""
API_SERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files the API server, the controllers and clients read."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public: Path

    @classmethod
    def in_directory(cls, directory: Path) -> Pki:
        """The files `create_pki(directory, ...)` wrote, for a later process that issues more certificates."""
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "apiserver.crt",
            server_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            service_account_key=directory / "sa.key",
            service_account_public=directory / "sa.pub",
        )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    """Write `key` to `path`, readable by its owner alone from the moment the file exists.

    Created with mode 0600 (never written under the umask's 0644 and narrowed afterwards, a window in which another
    local user could read the CA key, which mints `system:masters` certificates), and never through a symlink.
    """
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # a key file left by an earlier run keeps its own mode through O_CREAT
        out.write(pem)
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _builder(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def create_pki(directory: Path, service_ip: str) -> Pki:
    """A CA, the API server's serving certificate, an admin client certificate and the service-account keys, in
    `directory`, which only its owner may enter."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webapp-e2e-ca")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = _key()
    server_cert = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), ca_name, server_key.public_key()
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in API_SERVER_NAMES]
                + [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address(service_ip))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    admin_key = _key()
    admin_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "webapp-e2e-admin"),
        ]
    )
    admin_cert = (
        _builder(admin_name, ca_name, admin_key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    service_account_key = _key()
    public = service_account_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "sa.pub").write_bytes(public)
    return Pki(
        ca_cert=_write_cert(directory / "ca.crt", ca_cert),
        ca_key=_write_key(directory / "ca.key", ca_key),
        server_cert=_write_cert(directory / "apiserver.crt", server_cert),
        server_key=_write_key(directory / "apiserver.key", server_key),
        admin_cert=_write_cert(directory / "admin.crt", admin_cert),
        admin_key=_write_key(directory / "admin.key", admin_key),
        service_account_key=_write_key(directory / "sa.key", service_account_key),
        service_account_public=directory / "sa.pub",
    )


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def issue(
    pki: Pki,
    stem: str,
    common_name: str,
    *,
    organization: str = "",
    server_ips: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
) -> KeyPair:
    """A certificate signed by `pki`'s CA, next to it: a client one, or a serving one for `server_ips`/`dns_names`.

    The real node needs three: the kubelet's client identity (`system:node:NAME` in `system:nodes`, which the
    Node authorizer and NodeRestriction expect), the kubelet's serving certificate for its node IP, and the API
    server's client certificate for `kubectl exec/logs` through the kubelet.
    """
    directory = pki.ca_cert.parent
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    loaded = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    name = x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    key = _key()
    builder = _builder(name, ca_cert.subject, key.public_key())
    if server_ips or dns_names:
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        sans += [x509.DNSName(name) for name in dns_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    cert = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(loaded, hashes.SHA256())
    return KeyPair(_write_cert(directory / f"{stem}.crt", cert), _write_key(directory / f"{stem}.key", key))
