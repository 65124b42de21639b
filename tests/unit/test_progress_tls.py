"""The progress endpoint's certificate: made for the URL's host, verified against its CA only."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from streamtrain_operator.tls import ca_config_map, make_serving_certificate, server_host

from workload.contract import PROGRESS_CA_CONFIGMAP, PROGRESS_CA_KEY


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> None:
    """A TLS handshake over a socket pair (no network): raises when the client refuses."""
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(right, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(left, server_hostname=host) as tls:
            tls.sendall(b"x")
    finally:
        left.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("url", ["https://streamtrain-operator-progress.system.svc:8081",
                                 "https://127.0.0.1:8081"])
def test_pods_verify_the_endpoint_by_the_published_ca_for_the_urls_host(url: str) -> None:
    host = server_host(url)
    certificate = make_serving_certificate(host)
    _handshake(certificate.ssl_context(), ssl.create_default_context(cadata=certificate.ca_pem),
               host)


def test_another_ca_or_another_host_is_refused() -> None:
    certificate = make_serving_certificate("operator.system.svc")
    stranger = make_serving_certificate("operator.system.svc")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certificate.ssl_context(), ssl.create_default_context(cadata=stranger.ca_pem),
                   "operator.system.svc")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certificate.ssl_context(),
                   ssl.create_default_context(cadata=certificate.ca_pem), "elsewhere.svc")


def test_the_published_config_map_holds_the_ca_and_no_private_key() -> None:
    certificate = make_serving_certificate("operator.system.svc")
    published = ca_config_map("ns", certificate.ca_pem)
    assert published["metadata"]["name"] == PROGRESS_CA_CONFIGMAP
    assert published["data"] == {PROGRESS_CA_KEY: certificate.ca_pem}
    assert "PRIVATE KEY" not in str(published) and "PRIVATE KEY" in certificate.key_pem
