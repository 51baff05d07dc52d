"""A real Azure Blob API on loopback: Azurite (the npm package in
node_modules), in memory, on a free port. It checks Shared Key signatures and
SAS tokens like Azure does. The plain functions are reused by
``bench/delivery.py``.

If Azurite is not installed the fixture fails (it does not skip): run
``npm install`` in the project folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, wait_for_port

ACCOUNT = "devstoreaccount1"
# Azurite's published development key; it is public and only valid on Azurite.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
CONTAINER = "recordings"
AZURITE_BIN = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "azurite-blob"


@dataclass
class AzuriteServer:
    port: int = field(default_factory=free_port)
    container: str = CONTAINER
    account_name: str = ACCOUNT
    account_key: str = field(default=ACCOUNT_KEY, repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)
    workdir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.endpoint_url};"
        )

    def start(self) -> AzuriteServer:
        if not AZURITE_BIN.exists():
            raise RuntimeError(
                f"Azurite is not installed ({AZURITE_BIN} is missing): run `npm install` "
                "in the project folder (package.json lists azurite)."
            )
        # --inMemoryPersistence refuses --location, so the temp dir is the cwd
        # (Azurite may still write a debug log or lock files there).
        self.workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        log = open(Path(self.workdir.name) / "azurite.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--inMemoryPersistence",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ],  # fmt: skip
            cwd=self.workdir.name,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, self.process, "azurite-blob", timeout=60)
        self.service().create_container(self.container)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
        if self.workdir:
            self.workdir.cleanup()
            self.workdir = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            account_url=self.endpoint_url,
            credential={"account_name": self.account_name, "account_key": self.account_key},
        )

    def container_sas_url(self, *, write: bool = True, hours: float = 1) -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        permission = ContainerSasPermissions(
            read=True, write=write, create=write, delete=write, list=True
        )
        token = generate_container_sas(
            self.account_name,
            self.container,
            account_key=self.account_key,
            permission=permission,
            expiry=datetime.now(UTC) + timedelta(hours=hours),
        )
        return f"{self.endpoint_url}/{self.container}?{token}"

    def destination_config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "auth": "key",
            "account_name": self.account_name,
            "account_key": self.account_key,
            "container": self.container,
            "endpoint_url": self.endpoint_url,
            "root": "",
            **overrides,
        }


def start_azurite() -> AzuriteServer:
    return AzuriteServer().start()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    server = start_azurite()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite(azurite_server: AzuriteServer) -> AzuriteServer:
    """The session's server, brought back up if an earlier test stopped it."""
    if not azurite_server.running:
        azurite_server.start()
    return azurite_server
