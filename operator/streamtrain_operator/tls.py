"""The progress endpoint's TLS: a CA and a server certificate made at start, and the CA handed to
the job pods.

At start the operator makes a self-signed CA and a server certificate signed
by it for the host of its progress URL (`STREAMTRAIN_OPERATOR_PROGRESS_URL`:
the Service name, or an address). The private keys live in memory only:
Python's `ssl` loads a chain from a file name, so it is read from an
anonymous in-memory file (`memfd`) that nothing else can open and that is
gone once loaded.

Pods verify the server against the CA, which the operator publishes as the
ConfigMap `contract.PROGRESS_CA_CONFIGMAP` in each namespace where it creates
pods (as Kubernetes publishes its own `kube-root-ca.crt`), once per
namespace and process: before its first child Job there, and again after a
restart, whose new CA the kubelet then refreshes in the running pods' mount.
The operator may create ConfigMaps and patch only that one name (RBAC).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import kubernetes
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from workload.contract import PROGRESS_CA_CONFIGMAP, PROGRESS_CA_KEY

VALID_DAYS = 3650
"""Days the CA and the server certificate are valid: a new pair is made at every start, so only a
process that runs for ten years outlives them."""

MANAGED_BY = {"app.kubernetes.io/managed-by": "streamtrain-operator"}


@dataclass(frozen=True)
class ServingCertificate:
    """The CA (public part only is ever shown) and the server's certificate and key, as PEM."""

    ca_pem: str
    certificate_pem: str
    key_pem: str = ""

    def ssl_context(self) -> ssl.SSLContext:
        """A server context (TLS 1.2 or newer) holding the certificate and key."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        descriptor = os.memfd_create("progress-tls", os.MFD_CLOEXEC)
        try:
            os.write(descriptor, (self.certificate_pem + self.key_pem).encode())
            context.load_cert_chain(f"/proc/self/fd/{descriptor}")
        finally:
            os.close(descriptor)
        return context


def server_host(url: str) -> str:
    """The host pods connect to, from the progress URL (`localhost` when none is set)."""
    return urlsplit(url).hostname or "localhost"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _subject_alternative_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_serving_certificate(host: str) -> ServingCertificate:
    """A fresh CA and a certificate for `host` (a DNS name or an IP address) signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("streamtrain-operator progress CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=False, content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
              encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder().subject_name(_name(host[:64])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_subject_alternative_name(host)]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return ServingCertificate(
        ca.public_bytes(pem).decode(), certificate.public_bytes(pem).decode(),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode())


def ca_config_map(namespace: str, ca_pem: str) -> dict[str, Any]:
    """The ConfigMap that hands the CA to the pods of `namespace`."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": PROGRESS_CA_CONFIGMAP, "namespace": namespace,
                         "labels": dict(MANAGED_BY)},
            "data": {PROGRESS_CA_KEY: ca_pem}}


class CaPublisher:
    """Writes the CA ConfigMap into a namespace once per process (create, else patch)."""

    def __init__(self, ca_pem: str) -> None:
        self.ca_pem = ca_pem
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        """Make sure `namespace`'s pods can read this process's CA (at most one write each)."""
        with self._lock:
            if namespace in self._done:
                return
        core: Any = kubernetes.client.CoreV1Api(api)
        body = ca_config_map(namespace, self.ca_pem)
        try:
            core.create_namespaced_config_map(namespace, body)
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
            core.patch_namespaced_config_map(PROGRESS_CA_CONFIGMAP, namespace,
                                             {"metadata": {"labels": body["metadata"]["labels"]},
                                              "data": body["data"]})
        with self._lock:
            self._done.add(namespace)
