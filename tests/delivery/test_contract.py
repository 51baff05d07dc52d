"""The destination contract (tests/delivery/contract.py) run by every kind
against its real server: a local folder, moto's S3 server with IAM auth,
Azurite, pyftpdlib (plain and explicit TLS), OpenSSH's sshd (SFTP and SCP)
and the Google Drive double. Each test gets a root of its own on the
session's server; ``-k s3`` runs one kind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.delivery import MB
from tests.delivery.contract import DestinationContract, Harness, Refusal
from tests.servers import azurite as azurite_servers
from tests.servers import free_port
from tests.servers import ftp as ftp_servers
from tests.servers import gdrive_double as gdrive_servers
from tests.servers import moto_s3 as s3_servers
from tests.servers import sshd as sshd_servers

# The contract is about the destinations and their servers, not the database
# (its one engine test has PostgreSQL twins in test_engine*.py): the
# PostgreSQL pass skips it, the SQLite pass runs all of it.
pytestmark = pytest.mark.slow

# The kinds' real servers (session-scoped, shared with the per-kind modules),
# assigned rather than imported by name: ruff reports fixture parameters that
# shadow an imported name (F811).
s3_server, s3 = s3_servers.s3_server, s3_servers.s3
azurite_server, azurite = azurite_servers.azurite_server, azurite_servers.azurite
ftp_server, ftps_server = ftp_servers.ftp_server, ftp_servers.ftps_server
sshd_server, sshd = sshd_servers.sshd_server, sshd_servers.sshd
gdrive_double, gdrive = gdrive_servers.gdrive_double, gdrive_servers.gdrive

CONTRACT_FOLDER = "Contract"
GOOGLE_REVOKED = "Google account access was revoked or expired: reconnect the Google account"


def unique_root(request: pytest.FixtureRequest) -> str:
    return "contract/" + re.sub(r"[^\w-]+", "-", request.node.name).strip("-")


def flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


class FolderHarness(Harness):
    """Kinds whose server keeps files in a folder this test can read."""

    base: Path  # what the destination's root is, on this machine

    def read(self, remote: str) -> bytes | None:
        path = self.base / remote
        return path.read_bytes() if path.is_file() else None

    def listing(self, folder: str) -> list[str]:
        path = self.base / folder
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def leftovers(self) -> list[str]:
        if not self.base.is_dir():
            return []
        return sorted(str(p.relative_to(self.base)) for p in self.base.rglob("*")
                      if ".part" in p.name or "probe" in p.name)  # fmt: skip

    def tamper(self, remote: str) -> None:
        flip_first_byte(self.base / remote)

    def inside(self, path: str) -> bool:
        return path.startswith(f"{self.base}/")

    def everything_under(self, top: Path) -> set[str]:
        return {str(p) for p in top.rglob("*") if p.is_file()}


# -- local folder --------------------------------------------------------------------------------
class LocalHarness(FolderHarness):
    kind = "local"
    class_name = "LocalFolderDestination"
    unit = 3 * MB  # the 9 MiB file of the upload test crosses the 8 MiB copy chunk
    resumes = "restarts"  # a copy on this machine starts again; nothing to continue
    network = False
    check_words = "Wrote and removed a probe file in"

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest):
        request.getfixturevalue("local_roots")
        self.folder = tmp_path / "mnt"
        self.folder.mkdir()
        self.root = "portal"
        self.base = self.folder / self.root

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"path": str(self.folder), "root": f"/{self.root}/", **overrides}

    def everything(self) -> set[str]:
        return self.everything_under(self.folder)

    def final_path(self, remote: str) -> str:
        return str(self.base / remote)

    def description(self) -> str:
        return f"file://{self.base}"

    def unreachable(self) -> Refusal:
        missing = self.folder.parent / "not-mounted"
        return Refusal({"path": str(missing)}, f"Folder {missing} does not exist or is not mounted",
                       permanent=True)  # fmt: skip


# -- S3 (moto) -----------------------------------------------------------------------------------
class S3Harness(Harness):
    kind = "s3"
    class_name = "S3Destination"
    unit = 5 * MB  # S3's smallest part

    def __init__(self, request: pytest.FixtureRequest):
        self.s3 = request.getfixturevalue("s3")
        self.root = unique_root(request)
        self.check_words = f"s3://recordings/{self.root}"

    def config(self, **overrides: Any) -> dict[str, Any]:
        # Slashes around the root are dropped (describe() and keys show it bare).
        return self.s3.destination_config(root=f"/{self.root}/", **overrides)

    def tune(self, dest: Any) -> None:
        dest.multipart_threshold = dest.multipart_chunksize = self.unit

    def _keys(self, prefix: str) -> list[str]:
        client, keys = self.s3.client(), []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3.bucket, Prefix=prefix
        ):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def read(self, remote: str) -> bytes | None:
        try:
            got = self.s3.client().get_object(Bucket=self.s3.bucket, Key=f"{self.root}/{remote}")
        except Exception as exc:
            if "NoSuchKey" in str(exc):
                return None
            raise
        return got["Body"].read()

    def listing(self, folder: str) -> list[str]:
        prefix = f"{self.root}/{folder}/".replace("//", "/")
        return sorted({k[len(prefix) :].split("/", 1)[0] for k in self._keys(prefix)})

    def leftovers(self) -> list[str]:
        return [u["Key"] for u in self.s3.incomplete_uploads(self.root + "/")] + [
            k for k in self._keys(self.root + "/") if "probe" in k
        ]

    def everything(self) -> set[str]:
        return set(self._keys(""))

    def inside(self, path: str) -> bool:
        return path.startswith(f"{self.root}/")  # keys are flat: ".." is a name

    def tamper(self, remote: str) -> None:
        key = f"{self.root}/{remote}"
        data = bytearray(self.read(remote) or b"")
        data[0] ^= 0xFF
        self.s3.client().put_object(Bucket=self.s3.bucket, Key=key, Body=bytes(data))

    def final_path(self, remote: str) -> str:
        return f"s3://recordings/{self.root}/{remote}"

    def description(self) -> str:
        return f"s3://recordings/{self.root} at {self.s3.endpoint_url}"

    def secrets(self) -> list[str]:
        return [self.s3.secret_access_key]

    def bad_credentials(self) -> Refusal:
        secret = "wrong-secret-" + "x" * 27
        return Refusal(self.config(secret_access_key=secret),
                       f"S3 rejected the access key '{self.s3.access_key_id}' for bucket 'recordings'",
                       permanent=True, secret=secret)  # fmt: skip

    def unreachable(self) -> Refusal:
        return Refusal(self.config(endpoint_url=f"http://127.0.0.1:{free_port()}"), "Cannot reach",
                       permanent=False)  # fmt: skip


# -- Azure Blob (Azurite) ----------------------------------------------------------------------
class AzureHarness(Harness):
    kind = "azure"
    class_name = "AzureBlobDestination"
    unit = 4 * MB

    def __init__(self, request: pytest.FixtureRequest):
        self.azurite = request.getfixturevalue("azurite")
        self.root = unique_root(request)
        self.check_words = f"azure://devstoreaccount1/recordings/{self.root}"

    def config(self, **overrides: Any) -> dict[str, Any]:
        return self.azurite.destination_config(root=self.root, **overrides)

    def tune(self, dest: Any) -> None:
        dest.max_block_size = dest.max_single_put_size = self.unit

    def _container(self) -> Any:
        return self.azurite.service().get_container_client(self.azurite.container)

    def read(self, remote: str) -> bytes | None:
        blob = self._container().get_blob_client(f"{self.root}/{remote}")
        if not blob.exists():
            return None
        return blob.download_blob().readall()

    def listing(self, folder: str) -> list[str]:
        prefix = f"{self.root}/{folder}/".replace("//", "/")
        names = self._container().list_blob_names(name_starts_with=prefix)
        return sorted({n[len(prefix) :].split("/", 1)[0] for n in names})

    def leftovers(self) -> list[str]:
        container = self._container()
        committed = set(container.list_blob_names(name_starts_with=self.root + "/"))
        every = {b.name for b in container.list_blobs(name_starts_with=self.root + "/",
                                                      include=["uncommittedblobs"])}  # fmt: skip
        return sorted(every - committed) + sorted(n for n in committed if "probe" in n)

    def everything(self) -> set[str]:
        return set(self._container().list_blob_names())

    def inside(self, path: str) -> bool:
        return path.startswith(f"{self.root}/")

    def tamper(self, remote: str) -> None:
        data = bytearray(self.read(remote) or b"")
        data[0] ^= 0xFF
        self._container().get_blob_client(f"{self.root}/{remote}").upload_blob(
            bytes(data), overwrite=True
        )

    def final_path(self, remote: str) -> str:
        return f"azure://devstoreaccount1/recordings/{self.root}/{remote}"

    def description(self) -> str:
        return f"azure://devstoreaccount1/recordings/{self.root}"

    def secrets(self) -> list[str]:
        return [self.azurite.account_key]

    def bad_credentials(self) -> Refusal:
        wrong = self.azurite.account_key[:-8] + "AAAAAAA="
        return Refusal(self.config(account_key=wrong),
                       "Azure rejected the account key for account 'devstoreaccount1'",
                       permanent=True, secret=wrong)  # fmt: skip

    def unreachable(self) -> Refusal:
        port = free_port()
        config = self.config(endpoint_url=f"http://127.0.0.1:{port}/devstoreaccount1")
        return Refusal(config, "Cannot reach Azure Blob storage for account 'devstoreaccount1'",
                       permanent=False)  # fmt: skip


# -- FTP and FTPS (pyftpdlib) ----------------------------------------------------------------
class FTPHarness(FolderHarness):
    kind = "ftp"
    class_name = "FTPDestination"
    keeps_connection = True
    verifies = "size"  # FTP gives no checksum: SIZE only (delivery/destinations/ftp/)
    server_fixture = "ftp_server"

    def __init__(self, request: pytest.FixtureRequest):
        self.server = request.getfixturevalue(self.server_fixture)
        self.root = unique_root(request)
        self.base = self.server.read(self.root)
        self.check_words = f"/{self.root}"

    def config(self, **overrides: Any) -> dict[str, Any]:
        return self.server.config(root=self.root, **overrides)

    def everything(self) -> set[str]:
        return self.everything_under(self.server.home)

    def final_path(self, remote: str) -> str:
        return f"/{self.root}/{remote}"

    def description(self) -> str:
        return f"ftp://rec@127.0.0.1:{self.server.port}/{self.root}"

    def secrets(self) -> list[str]:
        return [self.server.password]

    def bad_credentials(self) -> Refusal:
        wrong = "not-the-Right-one"
        return Refusal(self.config(password=wrong),
                       f"530 Login incorrect for user 'rec' on 127.0.0.1:{self.server.port}",
                       permanent=True, secret=wrong, match="start")  # fmt: skip

    def unreachable(self) -> Refusal:
        port = free_port()
        return Refusal(
            self.config(port=port), f"Connection refused by 127.0.0.1:{port}", permanent=False
        )


class FTPSHarness(FTPHarness):
    server_fixture = "ftps_server"

    def config(self, **overrides: Any) -> dict[str, Any]:
        return super().config(pinned_fingerprint=self.server.fingerprint, **overrides)

    def description(self) -> str:
        return f"ftps://rec@127.0.0.1:{self.server.port}/{self.root}"


# -- SFTP and SCP (OpenSSH sshd) ---------------------------------------------------------------
class SFTPHarness(FolderHarness):
    kind = "sftp"
    class_name = "SFTPDestination"
    keeps_connection = True
    scheme = "sftp"
    check_words = "Wrote and removed a probe file"
    unit = 4 * MB  # SFTP checkpoints its acknowledged offset every 4 MiB

    def __init__(self, request: pytest.FixtureRequest):
        self.sshd = request.getfixturevalue("sshd")
        self.root = unique_root(request)
        self.base = self.sshd.upload_dir() / self.root

    def config(self, **overrides: Any) -> dict[str, Any]:
        return self.sshd.config(root=str(self.base), **overrides)

    def everything(self) -> set[str]:
        return self.everything_under(self.sshd.upload_dir())

    def final_path(self, remote: str) -> str:
        return str(self.base / remote)

    def description(self) -> str:
        return f"{self.scheme}://{self.sshd.config()['username']}@127.0.0.1:{self.sshd.port}{self.base}"

    def secrets(self) -> list[str]:
        return [self.sshd.config()["password"]]

    def bad_credentials(self) -> Refusal:
        user = self.sshd.config()["username"]
        return Refusal(self.config(password="not-the-password"),
                       f"SSH login failed for user '{user}' on 127.0.0.1:{self.sshd.port} (password rejected)",
                       permanent=True, secret="not-the-password", match="whole")  # fmt: skip

    def unreachable(self) -> Refusal:
        port = free_port()
        return Refusal(
            self.config(port=port), f"Cannot connect to 127.0.0.1:{port}", permanent=False
        )


class SCPHarness(SFTPHarness):
    kind = "scp"
    class_name = "SCPDestination"
    scheme = "scp"
    resumes = "restarts"  # scp has no offset
    restart_note = "SCP cannot resume: sending {name} again from byte 0"


# -- Google Drive (the double) ----------------------------------------------------------------
class GoogleDriveHarness(Harness):
    kind = "gdrive"
    class_name = "GoogleDriveDestination"
    keeps_connection = True  # the Drive client (httplib2) keeps its connection alive
    unit = 256 * 1024  # Drive's chunk granularity

    def __init__(self, request: pytest.FixtureRequest):
        from tests.servers.gdrive_double import DEFAULT_EMAIL

        self.double = request.getfixturevalue("gdrive")
        self.settings = request.getfixturevalue("settings")
        self.email = DEFAULT_EMAIL
        self.token = self.double.grant()
        self.root = "contract"
        self.check_words = f"{CONTRACT_FOLDER}/{self.root}"

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"refresh_token": self.token, "account_email": self.email,
                "folder": CONTRACT_FOLDER, "root": self.root, **overrides}  # fmt: skip

    def tune(self, dest: Any) -> None:
        dest.chunk_size = self.unit
        dest.retry_delay = 0

    def _at(self, remote: str) -> list[Any]:
        return self.double.walk(f"{CONTRACT_FOLDER}/{self.root}/{remote}".rstrip("/"))

    def read(self, remote: str) -> bytes | None:
        found = self._at(remote)
        assert len(found) <= 1, f"{len(found)} files named {remote}"
        return found[0].content if found else None

    def listing(self, folder: str) -> list[str]:
        found = self._at(folder)
        return sorted(c.name for f in found for c in self.double.children(f.id))

    def leftovers(self) -> list[str]:
        # An unfinished upload session is invisible in Drive and expires by itself.
        return sorted(path for path in self.everything() if "probe" in path)

    def everything(self) -> set[str]:
        paths: set[str] = set()

        def walk(parent: str, prefix: str) -> None:
            for child in self.double.children(parent):
                path = f"{prefix}/{child.name}"
                if child.mimeType == "application/vnd.google-apps.folder":
                    walk(child.id, path)
                else:
                    paths.add(path)

        walk(self.double.root_id(), "")
        return paths

    def inside(self, path: str) -> bool:
        return path.startswith(f"/{CONTRACT_FOLDER}/{self.root}/")  # ".." is a folder's name

    def tamper(self, remote: str) -> None:
        [f] = self._at(remote)
        data = bytearray(f.content)
        data[0] ^= 0xFF
        f.content = bytes(data)

    def final_path(self, remote: str) -> str:
        return f"gdrive://{CONTRACT_FOLDER}/{self.root}/{remote}"

    def description(self) -> str:
        return f"gdrive://{self.email}/{CONTRACT_FOLDER}/{self.root}"

    def secrets(self) -> list[str]:
        return [self.token]

    def bad_credentials(self) -> Refusal:
        revoked = self.double.grant()
        self.double.grants[revoked].revoked = True
        return Refusal(self.config(refresh_token=revoked), GOOGLE_REVOKED, permanent=True,
                       secret=revoked, match="whole")  # fmt: skip

    def unreachable(self) -> Refusal:
        port = free_port()
        self.settings.GOOGLE_OAUTH_TOKEN_URI = f"http://127.0.0.1:{port}/token"
        self.settings.GOOGLE_DRIVE_API_BASE = f"http://127.0.0.1:{port}/"
        return Refusal(self.config(), "Lost the connection to Google Drive while connecting",
                       permanent=False)  # fmt: skip


HARNESSES: dict[str, Any] = {
    "local": lambda request, tmp_path: LocalHarness(tmp_path, request),
    "s3": lambda request, tmp_path: S3Harness(request),
    "azure": lambda request, tmp_path: AzureHarness(request),
    "ftp": lambda request, tmp_path: FTPHarness(request),
    "ftps": lambda request, tmp_path: FTPSHarness(request),
    "sftp": lambda request, tmp_path: SFTPHarness(request),
    "scp": lambda request, tmp_path: SCPHarness(request),
    "gdrive": lambda request, tmp_path: GoogleDriveHarness(request),
}


@pytest.fixture(params=list(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return HARNESSES[request.param](request, tmp_path)


class TestContract(DestinationContract):
    pass
