"""The platform's certificate authority, and the certificates it signs (for the database server)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateAuthority:
    cert_file: Path
    key_file: Path

    @classmethod
    def load_or_create(cls, folder: Path) -> "CertificateAuthority":
        ca = cls(folder / "ca.crt", folder / "ca.key")
        if not ca.cert_file.exists():
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o711)  # apps read ca.crt (PGSSLROOTCERT); ca.key stays 0600
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shipyard CA")])
            now = dt.datetime.now(dt.timezone.utc)
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                    .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                    .not_valid_after(now + dt.timedelta(days=3650))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                 content_commitment=False, key_encipherment=False,
                                                 data_encipherment=False, key_agreement=False,
                                                 encipher_only=False, decipher_only=False), critical=True)
                    .sign(key, hashes.SHA256()))
            write_private(ca.key_file, key)
            # Apps read the CA to verify the server (PGSSLROOTCERT): public, world-readable.
            ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            os.chmod(ca.cert_file, 0o644)
        return ca

    def issue(self, cert_file: Path, key_file: Path, hosts: list[str], days: int = 825) -> None:
        cert, key = self._sign(hosts, days)
        write_private(key_file, key)
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue_pem(self, hosts: list[str], days: int = 825) -> str:
        """A certificate for `hosts` and its key in one PEM text, as HAProxy loads them."""
        cert, key = self._sign(hosts, days)
        return (cert.public_bytes(serialization.Encoding.PEM)
                + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())).decode()

    def _sign(self, hosts: list[str], days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        ca_key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
                .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
        return cert, key


def write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
