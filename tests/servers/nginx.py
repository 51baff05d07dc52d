"""Debian's nginx run with the shipped deploy/nginx.conf.template in front of
the portal's gunicorn (tests/servers/portal.py), as docs/deploy.md sets it up:
X-Accel-Redirect on, links and file URLs naming nginx."""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.portal import ROOT, PortalProcesses, free_port, wait_for_port


def nginx_binary() -> str:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "Debian's nginx is missing: `make test` installs it"
    return nginx


def render_config(run_dir: Path, *, gunicorn_port: int, nginx_port: int, data_dir: Path) -> Path:
    template = string.Template((ROOT / "deploy" / "nginx.conf.template").read_text())
    conf = template.safe_substitute(
        NGINX_RUN_DIR=str(run_dir),
        GUNICORN_ADDR=f"127.0.0.1:{gunicorn_port}",
        NGINX_LISTEN=f"127.0.0.1:{nginx_port}",
        STATIC_ROOT=str(data_dir / "static"),
        RECORDINGS_ROOT=str(data_dir / "recordings"),
    )
    # The tests run as root; nginx workers must be able to read DATA_DIR.
    conf = ("user root;\n" if os.geteuid() == 0 else "") + conf
    path = run_dir / "nginx.conf"
    path.write_text(conf)
    return path


@contextmanager
def portal_behind_nginx(
    *, extra_env: dict | None = None, setup=None
) -> Iterator[tuple[PortalProcesses, str]]:
    """A set-up portal (``setup(portal)`` runs before gunicorn starts) behind
    nginx; yields the portal and nginx's base URL."""
    nginx = nginx_binary()
    portal = PortalProcesses(
        extra_env={"RECORDINGS_X_ACCEL_PREFIX": "/_protected", **(extra_env or {})}
    )
    nginx_port, gunicorn_port = free_port(), free_port()
    # Links and file URLs name nginx, the public entry point.
    portal.env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{nginx_port}"
    run_dir = Path(tempfile.mkdtemp(prefix="nginx-"))
    proc = None
    try:
        portal.setup()
        if setup is not None:
            setup(portal)
        portal.start_web(bind_port=gunicorn_port)
        conf = render_config(
            run_dir, gunicorn_port=gunicorn_port, nginx_port=nginx_port, data_dir=portal.data_dir
        )
        proc = subprocess.Popen(
            [nginx, "-e", str(run_dir / "error.log"), "-p", str(run_dir), "-c", str(conf),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for_port(nginx_port, proc, "nginx")
        portal.nginx_run_dir = run_dir  # tests read nginx's access log there
        yield portal, f"http://127.0.0.1:{nginx_port}"
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        portal.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
