"""The real portal as separate processes: gunicorn (web) and qclusters
(delivery/webhook workers and media-processing workers) sharing a temporary DATA_DIR and database, as in production.

Used by tests that need what a single test process cannot show: nginx in
front of gunicorn, workers killed with SIGKILL, several workers at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.servers import free_port, wait_for_port  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parents[2]
TEST_FERNET_KEY = "dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLWl0LTAwMDA="


def own_data_dir(data_dir: Path | None) -> dict[str, str]:
    return {"DATA_DIR": str(data_dir)} if data_dir else {}


class PortalProcesses:
    """A portal installation in a temporary folder. ``DATABASE_URL`` may name
    a PostgreSQL database; SQLite in DATA_DIR otherwise."""

    def __init__(
        self,
        *,
        database_url: str | None = None,
        extra_env: dict | None = None,
        data_dir: Path | None = None,
    ):
        # ``data_dir``: an existing folder, e.g. a size-limited mount.
        self.owns_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="portal-"))
        os.chmod(self.data_dir, 0o755)  # nginx workers read recordings from here
        self.port = free_port()
        self.public_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            # Not the test run's own database or broker: this portal has its own.
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("PYTEST", "DJANGO")) and k not in ("DATABASE_URL", "REDIS_URL")
            },
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATA_DIR": str(self.data_dir),
            "SECRET_KEY": "portal-process-test-secret-key-" + "k" * 30,
            "FIELD_ENCRYPTION_KEYS": TEST_FERNET_KEY,
            "PUBLIC_BASE_URL": self.public_url,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEBUG": "false",
            "Q_WORKERS": "2",
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",  # the test servers are on loopback
            **({"DATABASE_URL": database_url} if database_url else {}),
            **(extra_env or {}),
        }
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        # The media-processing cluster (Q_CLUSTER_NAME=processing), apart from
        # ``workers`` so tests that kill and restart delivery workers leave it be.
        self.processing_workers: list[subprocess.Popen] = []
        self.logs = self.data_dir / "logs"
        self.logs.mkdir(exist_ok=True)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300, check=check,
        )

    def setup(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("createcachetable")  # the throttles' shared cache
        self.manage("collectstatic", "--noinput", "-v0")
        self.manage("shell", "-c", (
            "from django.contrib.auth import get_user_model;"
            "get_user_model().objects.create_user('ops', 'ops@example.com', 'ops-password-123')"
        ))  # fmt: skip

    def create_project(self, name: str = "Proc") -> dict[str, str]:
        out = self.manage("createproject", name, "--owner", "ops").stdout
        return dict(line.split("=", 1) for line in out.split() if "=" in line)

    def start_web(self, *, bind_port: int | None = None) -> None:
        port = bind_port or self.port
        log = open(self.logs / "web.log", "ab")
        self.web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
             "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
             "--access-logfile", str(self.logs / "access.log"),
             "--worker-class", "gthread", "--workers", "2", "--threads", "4", "--timeout", "300"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(port)

    def start_worker(self, *, data_dir: Path | None = None) -> subprocess.Popen:
        """A delivery and webhook qcluster; the first call also starts a
        processing qcluster, so sessions get processed as in production.
        ``data_dir``: the worker's own DATA_DIR, as on a machine that shares
        only the database and the bucket with the web (its log stays here)."""
        if not any(p.poll() is None for p in self.processing_workers):
            self.start_processing_worker(data_dir=data_dir)
        proc = self._qcluster(f"worker-{len(self.workers)}.log", own_data_dir(data_dir))
        self.workers.append(proc)
        return proc

    def start_processing_worker(self, *, data_dir: Path | None = None) -> subprocess.Popen:
        name = f"processing-{len(self.processing_workers)}.log"
        proc = self._qcluster(name, {"Q_CLUSTER_NAME": "processing", **own_data_dir(data_dir)})
        self.processing_workers.append(proc)
        return proc

    def _qcluster(self, log_name: str, env: dict) -> subprocess.Popen:
        log = open(self.logs / log_name, "ab")
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the process and its children (a qcluster forks workers)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop every process and remove the temporary DATA_DIR (unless
        ``keep_data``, e.g. to look at a failure)."""
        self._stop_processes()
        if self.owns_data_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _stop_processes(self) -> None:
        for proc in [*self.workers, *self.processing_workers]:
            if proc.poll() is None:
                self.kill(proc)
        if self.web and self.web.poll() is None:
            self.web.terminate()
            try:
                self.web.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.web.kill()

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.public_url + path, timeout=30, **kwargs)
