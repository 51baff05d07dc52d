"""Give the demo project one processed 3-participant session (used by `make run`
before the server starts, so it calls the ingest services in-process and
processes the session synchronously instead of going through HTTP)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from projects.actions.rooms import do_create_room
from projects.management.commands.setup_demo import DEMO_PROJECT, DEMO_USERNAME
from projects.models import Project, Room
from recordings.actions import sessions
from recordings.processing import process_session
from recordings.simulation import generate_logs, generate_recordings, participant_names


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


DEMO_ROOM = "Demo room"


class Command(BaseCommand):
    help = "Record one simulated 3-participant session into the demo project, once."

    def add_arguments(self, parser):
        parser.add_argument("--participants", type=int, default=3)
        parser.add_argument("--seconds", type=float, default=6.0)

    def handle(self, *args, participants, seconds, **options):
        user = get_user_model().objects.filter(username=DEMO_USERNAME).first()
        project = (
            Project.objects.filter(name=DEMO_PROJECT, memberships__user=user).first()
            if user
            else None
        )
        if project is None:
            raise CommandError("No demo project; run `manage.py setup_demo` first.")
        if project.sessions.exists():
            self.stdout.write("DEMO_SESSION=exists")
            return
        room = Room.objects.filter(project=project, name=DEMO_ROOM).first() or do_create_room(
            project, name=DEMO_ROOM, owner_ref="demo", settings={"auto_recording": True},
            acting_user=None,  # the demo stands in for the app's Video API calls
        )  # fmt: skip
        session = sessions.do_start_session(project, room.room_id, acting_user=None)
        names = participant_names(participants)
        # Inside DATA_DIR so the files are renamed into the store, not copied.
        base = Path(settings.DATA_DIR) / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="demo-", dir=base))
        try:
            files = generate_recordings(workdir, names, seconds)
            files += generate_logs(workdir, names, seconds, room.room_id, session.conf_num)
            for sample in files:
                sessions.do_store_file(
                    project,
                    session.conf_num,
                    file_type=sample.type,
                    source_path=str(sample.path),
                    original_name=sample.path.name,
                    size=sample.path.stat().st_size,
                    sha256=sha256_of(sample.path),
                    participant=sample.participant,
                    acting_user=None,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        sessions.do_end_session(
            project, session.conf_num, schedule_processing=False, acting_user=None
        )
        session = process_session(session.pk)
        self.stdout.write(f"DEMO_CONF_NUM={session.conf_num}")
        self.stdout.write(f"DEMO_SESSION={session.state}")
        if session.processing_error:
            raise CommandError(f"Processing failed: {session.processing_error}")
