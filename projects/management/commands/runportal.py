import contextlib
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import psutil
from django.conf import settings
from django.core.management.base import BaseCommand

from portal.management.commands.qcluster import STOP_SECONDS


def default_bind() -> str:
    """Listen where PUBLIC_BASE_URL points when that is this machine, so
    `PUBLIC_BASE_URL=http://127.0.0.1:8123 make run` serves the links, and the
    demo webhooks, it names."""
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        return f"127.0.0.1:{parts.port}"
    return "127.0.0.1:8000"


def demo_start_url() -> str:
    """The first page to open: the demo project's Webhook inbox, which shows
    the delivered session, its files on disk and the file_transfer webhook."""
    from demo.inbox import enabled
    from projects.management.commands.setup_demo import DEMO_PROJECT, DEMO_USERNAME
    from projects.models import Project

    project = Project.objects.filter(
        name=DEMO_PROJECT, memberships__user__username=DEMO_USERNAME
    ).first()
    if not enabled() or project is None:
        return ""
    return f"{settings.PUBLIC_BASE_URL}/accounts/login/?next=/projects/{project.app_id}/webhook-inbox/"


class Command(BaseCommand):
    help = (
        "Run the web server (gunicorn), the delivery/webhook workers and the media-processing "
        "workers (two qclusters) together until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default=default_bind(),
            help="host:port (default: that of PUBLIC_BASE_URL when it is on this machine)",
        )
        parser.add_argument("--login", default="", help="login line to print once started")

    def handle(self, *args, bind, login, **options):
        python = sys.executable
        processes = [
            subprocess.Popen(
                [
                    python, "-m", "gunicorn", "portal.wsgi", "--bind", bind,
                    "--config", str(settings.BASE_DIR / "deploy" / "gunicorn.conf.py"),
                    "--access-logfile", "-",
                ]
            ),
            subprocess.Popen([python, "manage.py", "qcluster"]),
            # The media-processing cluster (portal/queues.py).
            subprocess.Popen(
                [python, "manage.py", "qcluster"],
                env={**os.environ, "Q_CLUSTER_NAME": settings.PROCESSING_CLUSTER},
            ),
        ]
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        time.sleep(1.5)
        self.stdout.write("")
        self.stdout.write(f"Recording Delivery Portal is running at http://{bind}/")
        self.stdout.write(f"Public base URL: {settings.PUBLIC_BASE_URL}")
        if login:
            self.stdout.write(login)
        if start := demo_start_url():
            self.stdout.write(f"Start here (the delivered demo session and its webhook): {start}")
        self.stdout.write("Press Ctrl-C to stop the web server and the workers.")
        try:
            while not stopping and all(p.poll() is None for p in processes):
                time.sleep(0.5)
        finally:
            for p in processes:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            # A qcluster takes up to STOP_SECONDS to stop its running tasks.
            deadline = time.monotonic() + STOP_SECONDS + 5
            for p in processes:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        for child in psutil.Process(p.pid).children(recursive=True):
                            child.kill()
                        os.kill(p.pid, signal.SIGKILL)
