"""A local broker with TLS listeners, as Strimzi's `tls: true` listeners serve them.

A CA made per start signs the broker's certificate (for 127.0.0.1) and one
client certificate (CN = the user). Two listeners besides the plain one the
test's own admin uses: `SSL` with client certificates required (a KafkaUser of
type `tls`) and `SASL_SSL` with SCRAM-SHA-512 (type `scram-sha-512` on a TLS
listener). The folders it returns are laid out as Strimzi's Secrets are
mounted: the cluster CA (`ca.crt`) and the user (`user.crt`, `user.key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localparts import kafka as local_kafka
from localparts.cache import require_tool, run
from localparts.process import ServerProcess

MECHANISM = "SCRAM-SHA-512"
KEYSTORE_PASSWORD = "broker-keystore"
"""Protects only the broker's own PKCS#12 keystore file in the test's temporary folder."""
OPENSSL_HINT = "apt-get install openssl"


@dataclass
class TlsBroker:
    """The running broker, its addresses, and the mounted-Secret folders for clients."""

    process: ServerProcess
    plain_servers: str
    mtls_servers: str
    scram_tls_servers: str
    cluster_ca: Path
    """Folder with `ca.crt`, as the `<cluster>-cluster-ca-cert` Secret is mounted."""
    user: Path
    """Folder with `user.crt` and `user.key`, as a tls KafkaUser's Secret is mounted."""

    def stop(self) -> None:
        self.process.stop()


def _openssl(*arguments: str) -> None:
    run([require_tool("openssl", OPENSSL_HINT), *arguments], what="making test certificates")


def _certificates(folder: Path, username: str) -> tuple[Path, Path, Path]:
    """CA, broker keystore (PKCS#12) and the user's certificate; returns (ca folder, user
    folder, keystore)."""
    ca_dir, user_dir = folder / "cluster-ca", folder / "user"
    ca_dir.mkdir(parents=True)
    user_dir.mkdir(parents=True)
    ca_key, ca_crt = folder / "ca.key", ca_dir / "ca.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=streamtrain-test-ca", "-keyout", str(ca_key), "-out", str(ca_crt))
    for name, subject, extension, key, crt in (
            ("broker", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1",
             folder / "broker.key", folder / "broker.crt"),
            ("user", f"/CN={username}", "extendedKeyUsage=clientAuth",
             user_dir / "user.key", user_dir / "user.crt")):
        request = folder / f"{name}.csr"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", str(key), "-out", str(request))
        extensions = folder / f"{name}.ext"
        extensions.write_text(extension + "\n")
        _openssl("x509", "-req", "-in", str(request), "-CA", str(ca_crt), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(crt))
    keystore = folder / "broker.p12"
    _openssl("pkcs12", "-export", "-in", str(folder / "broker.crt"),
             "-inkey", str(folder / "broker.key"), "-out", str(keystore),
             "-passout", f"pass:{KEYSTORE_PASSWORD}")
    return ca_dir, user_dir, keystore


def start(data_dir: Path, username: str, password: str,
          version: str = local_kafka.KAFKA_VERSION) -> TlsBroker:
    """Start the broker; `username` may log in by certificate or by SCRAM with `password`."""
    ca_dir, user_dir, keystore = _certificates(data_dir / "certificates", username)
    broker = local_kafka.start(
        data_dir,
        version=version,
        extra_listeners=["SSL", "SASL_SSL"],
        extra_properties={
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(keystore),
            "ssl.keystore.password": KEYSTORE_PASSWORD,
            "ssl.key.password": KEYSTORE_PASSWORD,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(ca_dir / "ca.crt"),
            "listener.name.ssl.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        },
        scram_users={username: password},
    )
    return TlsBroker(broker.process, broker.bootstrap_servers, broker.address("SSL"),
                     broker.address("SASL_SSL"), ca_dir, user_dir)


def foreign_user(folder: Path, username: str) -> Path:
    """A user Secret folder (`user.crt`, `user.key`) whose certificate, for the same CN, is
    signed by a CA the broker does not trust; that CA's `ca.crt` sits beside them (a wrong
    cluster CA for clients)."""
    folder.mkdir(parents=True)
    ca_key, ca_crt = folder / "foreign-ca.key", folder / "ca.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=foreign-ca", "-keyout", str(ca_key), "-out", str(ca_crt))
    request, extensions = folder / "user.csr", folder / "user.ext"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={username}",
             "-keyout", str(folder / "user.key"), "-out", str(request))
    extensions.write_text("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca_crt), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
             "-out", str(folder / "user.crt"))
    return folder
