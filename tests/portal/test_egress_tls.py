"""The guarded HTTP clients over TLS: the socket comes from the guard, yet
SNI, the Host header and certificate checks still use the name of the URL."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from portal.egress_http import GuardedHttp, guarded_session
from tests.portal.test_egress import REAL_GETADDRINFO

NAME = "hooks.test"


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / f"{name}.crt", folder / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


class TLSReceiver:
    """HTTPS on 127.0.0.1 that records the SNI name and Host header it saw."""

    def __init__(self, certfile: Path, keyfile: Path):
        self.sni: list[str | None] = []
        self.hosts: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.hosts.append(self.headers.get("Host", ""))
                self.send_response(204)
                self.send_header("Connection", "close")
                self.end_headers()

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks_test_resolves_to_loopback(monkeypatch):
    def resolver(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        if host == NAME:
            host = "127.0.0.1"
        return REAL_GETADDRINFO(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)


@pytest.fixture
def tls_receiver(tmp_path, hooks_test_resolves_to_loopback):
    certfile, keyfile = certificate(tmp_path, NAME)
    receiver = TLSReceiver(certfile, keyfile)
    receiver.certfile = certfile
    yield receiver
    receiver.close()


def test_requests_through_the_guard_keep_sni_host_and_certificate_checks(tls_receiver):
    url = f"https://{NAME}:{tls_receiver.port}/hooks"
    with guarded_session() as session:
        response = session.post(url, data=b"{}", verify=str(tls_receiver.certfile), timeout=10)
    assert response.status_code == 204
    assert tls_receiver.sni == [NAME]
    assert tls_receiver.hosts == [f"{NAME}:{tls_receiver.port}"]


def test_a_certificate_for_another_name_is_still_rejected(tmp_path, tls_receiver):
    other, _key = certificate(tmp_path, "other.test")
    with guarded_session() as session, pytest.raises(requests.exceptions.SSLError):
        session.post(f"https://{NAME}:{tls_receiver.port}/", verify=str(other), timeout=10)


def test_httplib2_through_the_guard_keeps_sni_host_and_certificate_checks(tls_receiver):
    http = GuardedHttp(timeout=10, ca_certs=str(tls_receiver.certfile))
    response, _content = http.request(f"https://{NAME}:{tls_receiver.port}/drive", "GET")
    assert response.status == 204
    assert tls_receiver.sni == [NAME]
    assert tls_receiver.hosts == [f"{NAME}:{tls_receiver.port}"]
