import contextlib
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.management.commands.qcluster import STOP_SECONDS

# Ctrl-C, kill, the terminal closing: each stops the web server and both clusters.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        # Before the children start: a Ctrl-C from now on stops them all.
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        children: list[tuple[subprocess.Popen, signal.Signals]] = []
        try:
            for args, env, stop_with in self.children(bind):
                # A process group of its own: Ctrl-C in the terminal reaches this
                # process only, and each child gets one signal, from here.
                children.append((subprocess.Popen(args, env=env, process_group=0), stop_with))
            time.sleep(1.5)  # the servers log their start before the banner
            if not stopping:
                self.print_banner(bind, login)
            while not stopping and all(p.poll() is None for p, _ in children):
                time.sleep(0.5)
        finally:
            stop_children(children)

    @staticmethod
    def children(bind: str) -> list[tuple[list[str], dict[str, str], signal.Signals]]:
        """Each child's command, environment and the signal that stops it.

        gunicorn's master stops quickly on SIGINT: it sends each worker one
        SIGQUIT. The workers must not hear the Ctrl-C as well: a second signal
        that lands while gthread's quit handler holds its thread pool's
        shutdown lock (a plain Lock) runs the handler again, which waits on
        that lock for ever, and the master kills the worker only after
        ``--graceful-timeout`` (the clean-stop test took 30.3-30.7 s about
        one run in ten; tests/reliability/test_clean_stop.py reproduces it).
        A qcluster stops within STOP_SECONDS on SIGTERM to its main process,
        as under systemd's KillMode=mixed."""
        python = sys.executable
        web = [
            python, "-m", "gunicorn", "portal.wsgi", "--bind", bind,
            "--config", str(settings.BASE_DIR / "deploy" / "gunicorn.conf.py"),
            "--access-logfile", "-",
            # On a quick stop the master waits this long for workers to exit
            # before it kills them, and a worker's interpreter waits for its
            # request threads: a client in the middle of a request (a video
            # playing, a slow upload, a connection yet to send its headers)
            # held a Ctrl-C up for deploy/'s 30 s. A quick stop abandons the
            # requests anyway; a worker exits ~1 s after its SIGQUIT.
            "--graceful-timeout", "5",
        ]  # fmt: skip
        return [
            (web, dict(os.environ), signal.SIGINT),
            ([python, "manage.py", "qcluster"], dict(os.environ), signal.SIGTERM),
            # The media-processing cluster (portal/queues.py).
            (
                [python, "manage.py", "qcluster"],
                {**os.environ, "Q_CLUSTER_NAME": settings.PROCESSING_CLUSTER},
                signal.SIGTERM,
            ),
        ]

    def print_banner(self, bind: str, login: str) -> None:
        self.stdout.write("")
        self.stdout.write(f"Recording Delivery Portal is running at http://{bind}/")
        self.stdout.write(f"Public base URL: {settings.PUBLIC_BASE_URL}")
        if login:
            self.stdout.write(login)
        if start := demo_start_url():
            self.stdout.write(f"Start here (the delivered demo session and its webhook): {start}")
        self.stdout.write("Press Ctrl-C to stop the web server and the workers.")


def stop_children(children: list[tuple[subprocess.Popen, signal.Signals]]) -> None:
    """Send each running child its stop signal once, wait for all of them
    together, and kill the process group of any still running after
    STOP_SECONDS + 5 (a qcluster takes up to STOP_SECONDS to stop its
    running tasks)."""
    for p, signum in children:
        if p.poll() is None:
            p.send_signal(signum)
    deadline = time.monotonic() + STOP_SECONDS + 5
    for p, _ in children:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
