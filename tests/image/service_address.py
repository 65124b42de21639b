"""The API server at the address a pod reaches it by: `kubernetes.default.svc:443`.

kopf's service-account login always connects to https://kubernetes.default.svc
(port 443), while the local API server listens on a free port of 127.0.0.1. A
TCP relay on port 443 of a loopback address of its own (127.x.y.z, so tests
running side by side do not collide) stands in for the Service: the container
resolves `kubernetes.default.svc` to that address. TLS passes through
untouched; the serving certificate names `kubernetes.default.svc`.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from types import TracebackType

SERVICE_HOST = "kubernetes.default.svc"
SERVICE_PORT = 443


class ServiceRelay:
    """Relays connections from (a loopback address, 443) to the API server until closed."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(20):
            self.address = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
            try:
                self.listener.bind((self.address, SERVICE_PORT))
                break
            except OSError:
                continue
        else:
            raise OSError("no free loopback address for port 443")
        self.listener.listen(16)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> ServiceRelay:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until either side closes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
