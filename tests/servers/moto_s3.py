"""A real S3 API on loopback: moto's server in a subprocess, with IAM
authentication switched on so wrong keys are refused like on AWS.

The server can be stopped and started again on the same port mid-test. moto
keeps everything in memory, so a restart loses objects; ``start()`` re-creates
the bucket and, because moto's random generator is seeded first, the very same
access key. The plain functions are reused by ``bench/delivery.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.servers import free_port, wait_for_port  # noqa: F401  (re-exported)

REGION = "us-east-1"
BUCKET = "recordings"
SEED = 4242  # fixed so every (re)start creates the same IAM access key
S3_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


def moto_server_binary() -> str:
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: install the test extras (moto[server])")
    return str(binary)


@dataclass
class MotoS3Server:
    port: int = field(default_factory=free_port)
    bucket: str = BUCKET
    region: str = REGION
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3Server:
        self.process = subprocess.Popen(
            [moto_server_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, self.process, "moto_server")
        self._set_up()
        return self

    def stop(self) -> None:
        """Kill the server the hard way, as a crash or a network cut would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _set_up(self) -> None:
        requests.post(f"{self.endpoint_url}/moto-api/seed?a={SEED}", timeout=10).raise_for_status()
        iam = self.client("iam", access_key_id="setup", secret_access_key="setup")
        iam.create_user(UserName="portal")
        key = iam.create_access_key(UserName="portal")["AccessKey"]
        iam.put_user_policy(
            UserName="portal", PolicyName="s3-all", PolicyDocument=json.dumps(S3_POLICY)
        )
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
        # From now on every request must be signed with a key moto knows.
        requests.post(f"{self.endpoint_url}/moto-api/reset-auth", data=b"0", timeout=10)
        self.client().create_bucket(Bucket=self.bucket)

    def client(self, service: str = "s3", **credentials: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=credentials.get("access_key_id", self.access_key_id),
            aws_secret_access_key=credentials.get("secret_access_key", self.secret_access_key),
        )

    def destination_config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "endpoint_url": self.endpoint_url,
            "root": "",
            **overrides,
        }

    def incomplete_uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        listing = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return listing.get("Uploads", [])


def start_moto_s3() -> MotoS3Server:
    return MotoS3Server().start()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    server = start_moto_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: MotoS3Server) -> MotoS3Server:
    """The session's server, brought back up if an earlier test stopped it."""
    if not s3_server.running:
        s3_server.start()
    return s3_server
