"""TLS settings reach the driver: verification on by default, CA files, client certificates."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polystore_mongodb import MongoBackend
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from polystore import StoreUnavailableError
from polystore.testing import LocalMongoServer
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceUnavailable

KEY_PASSWORD = "client-key-passphrase"

# The test server does TLS handshakes on its accept thread, so a socket PyMongo leaks
# open (see ``reap_driver_sockets``) stalls later connections until it is collected.
pytestmark = pytest.mark.usefixtures("reap_driver_sockets")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1, and a client certificate whose key is
    encrypted with ``KEY_PASSWORD`` (certificate and key in one PEM file)."""
    ca = ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=polystore CA"]
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", *ca, cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        request = ["-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"]
        _openssl("req", "-newkey", "rsa:2048", "-nodes", *request, cwd=folder)
        signing = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"]
        output = ["-in", f"{name}.csr", "-out", f"{name}.pem", "-extfile", "san.cnf"]
        _openssl("x509", "-req", *signing, *output, cwd=folder)
    encrypt = ["-in", "client.key", "-out", "client.enc.key", "-passout", f"pass:{KEY_PASSWORD}"]
    _openssl("pkcs8", "-topk8", *encrypt, cwd=folder)
    bundle = (folder / "client.pem").read_text() + (folder / "client.enc.key").read_text()
    (folder / "client-bundle.pem").write_text(bundle)


class TlsMongoServer(LocalMongoServer):
    """A private server that only speaks TLS and requires a client certificate."""

    def __init__(self, certificates: Path) -> None:
        super().__init__(
            extra_args=[
                "--tls-cert-file", str(certificates / "server.pem"),
                "--tls-key-file", str(certificates / "server.key"),
                "--tls-ca-file", str(certificates / "ca.pem"),
                "--tls-require-client-cert",
            ]
        )  # fmt: skip
        self.certificates = certificates

    def _ping(self) -> bool:
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.url,
            tls=True,
            tlsCAFile=str(self.certificates / "ca.pem"),
            tlsCertificateKeyFile=str(self.certificates / "client-bundle.pem"),
            tlsCertificateKeyFilePassword=KEY_PASSWORD,
            serverSelectionTimeoutMS=1000,
        )
        try:
            return client.admin.command("hello").get("ok") == 1
        except PyMongoError:
            return False
        finally:
            client.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    folder = tmp_path_factory.mktemp("certificates")
    make_certificates(folder)
    return folder


@pytest.fixture
def tls_server(request: pytest.FixtureRequest, certificates: Path) -> Iterator[TlsMongoServer]:
    """A fresh server per test: a socket left half-open by an earlier test cannot stall it."""
    try:
        server = TlsMongoServer(certificates)
    except ServiceUnavailable as exc:
        if skip_allowed(request.config):
            pytest.skip(str(exc))
        raise
    try:
        server.start()
        yield server
    finally:
        server.close()


def client_certificate(server: TlsMongoServer) -> dict[str, Any]:
    return {
        "tls": True,
        "tls_certificate_key_file": str(server.certificates / "client-bundle.pem"),
        "tls_certificate_key_file_password": KEY_PASSWORD,
    }


@pytest.mark.asyncio
async def test_a_server_verified_against_its_ca_serves(
    tls_server: TlsMongoServer, make_settings: Any
) -> None:
    settings = make_settings(
        tls_server.url,
        tls_ca_file=str(tls_server.certificates / "ca.pem"),
        **client_certificate(tls_server),
    )
    async with MongoBackend(settings) as backend:
        store = backend.namespace("tls")
        await store.save("k", "secret over TLS")
        assert await store.get("k") == "secret over TLS"
    assert KEY_PASSWORD not in repr(settings)


@pytest.mark.asyncio
async def test_certificates_are_verified_by_default(
    tls_server: TlsMongoServer, make_settings: Any
) -> None:
    settings = make_settings(
        tls_server.url, timeout=2.0, retry={"attempts": 1}, **client_certificate(tls_server)
    )
    backend = MongoBackend(settings)
    with pytest.raises(StoreUnavailableError):
        await backend.namespace("tls").get("k")
    await backend.aclose()
    # The client hung up in the middle of every handshake: it rejected the certificate.
    assert "TLS handshake from" in tls_server.log_tail()


@pytest.mark.asyncio
async def test_verification_can_be_turned_off_explicitly(
    tls_server: TlsMongoServer, make_settings: Any
) -> None:
    settings = make_settings(
        tls_server.url, tls_allow_invalid_certificates=True, **client_certificate(tls_server)
    )
    async with MongoBackend(settings) as backend:
        assert (await backend.health()).ok is True


@pytest.mark.asyncio
async def test_a_server_requiring_a_client_certificate_refuses_a_client_without_one(
    tls_server: TlsMongoServer, make_settings: Any
) -> None:
    settings = make_settings(
        tls_server.url,
        timeout=2.0,
        retry={"attempts": 1},
        tls=True,
        tls_ca_file=str(tls_server.certificates / "ca.pem"),
    )
    backend = MongoBackend(settings)
    with pytest.raises(StoreUnavailableError):
        await backend.namespace("tls").get("k")
    await backend.aclose()
