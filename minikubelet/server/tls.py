"""The API's TLS: a CA of the node's own and a serving certificate it signs.

The API is served over TLS (``api.tls``, on by default; see ``security``). On first start the
daemon makes, under ``<state dir>/pki``: ``ca.crt``/``ca.key`` (a self-signed CA, ECDSA P-256,
valid 10 years) and ``serving.crt``/``serving.key`` (signed by that CA, for the node's names
and addresses). The CA certificate goes into the kubeconfig (``certificate-authority-data``),
so kubectl verifies the server without any system trust store. Keys are 0600 files
(``private_files``); the certificates are public.

The serving certificate names: ``localhost``, the node name, the host name and FQDN, every
``api.tlsSANs`` entry, and the listen address, or every address of the host when listening on
all of them. It is made again, by the same CA, whenever those names are no longer all in it (a
new address, a new SAN in the config), so clients keep trusting it. Delete ``pki/`` to get a
new CA (and then hand out the new kubeconfig).

Everything cryptographic is the ``cryptography`` package's.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minikubelet.server.private_files import read_private, write_private

log = logging.getLogger(__name__)

PKI_DIR = "pki"
VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """A listen host that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def host_addresses() -> list[str]:
    """Every address of this host's interfaces (link-local ones left out)."""
    out = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            text = addr.address.split("%")[0]
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                continue
            if not ip.is_link_local:
                out.append(str(ip))
    return out


def serving_names(*, listen_host: str, node_name: str, extra: Iterable[str] = ()) -> list[str]:
    """The DNS names and IP addresses the serving certificate must hold."""
    names = ["localhost", node_name, socket.gethostname(), socket.getfqdn(), *extra]
    names += ["127.0.0.1", "::1"]
    names += host_addresses() if is_wildcard(listen_host) else [listen_host]
    seen: dict[str, None] = {}
    for name in names:
        if name:
            seen.setdefault(str(ipaddress.ip_address(name)) if _is_ip(name) else name.lower())
    return list(seen)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_ca(node_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"minikubelet-ca@{node_name}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_serving(
    names: list[str], ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, node_name: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names
    ]
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _names_in(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = {n.lower() for n in sans.get_values_for_type(x509.DNSName)}
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return dns | ips


def ensure_tls(state_dir: Path, *, node_name: str, names: list[str]) -> TlsFiles:
    """The CA and serving certificate under ``<state_dir>/pki``, made or renewed as needed.
    Raises ``private_files.PrivateFileError`` for a key that is not private."""
    pki = state_dir / PKI_DIR
    pki.mkdir(mode=0o700, exist_ok=True)
    files = TlsFiles(ca_cert=pki / "ca.crt", cert=pki / "serving.crt", key=pki / "serving.key")
    ca_key_path = pki / "ca.key"

    ca_key_pem = read_private(ca_key_path)
    if ca_key_pem is None or not files.ca_cert.exists():
        ca, ca_key = _new_ca(node_name)
        write_private(ca_key_path, _key_pem(ca_key))
        files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        log.info("API TLS: made a CA in %s", files.ca_cert)
        serving = None
    else:
        loaded = serialization.load_pem_private_key(ca_key_pem, password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: not an ECDSA key")
        ca_key = loaded
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        serving = None
        if files.cert.exists() and read_private(files.key) is not None:
            serving = x509.load_pem_x509_certificate(files.cert.read_bytes())

    now = dt.datetime.now(dt.UTC)
    fresh = (
        serving is not None
        and serving.issuer == ca.subject
        and serving.not_valid_after_utc > now + dt.timedelta(days=30)
        and set(names) <= _names_in(serving)
    )
    if not fresh:
        cert, key = _new_serving(names, ca, ca_key, node_name)
        write_private(files.key, _key_pem(key))
        tmp = files.cert.with_name(f".{files.cert.name}.{os.getpid()}.tmp")
        tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, files.cert)
        log.info("API TLS: serving certificate for %s", ", ".join(names))
    return files
