"""Rows stored before the server decided content types lose the client's."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("projects", "0003_enablex_room_fields_and_webhook_events"),
    ("recordings", "0005_session_call_log_for_cdr"),
]
AFTER = [("recordings", "0006_processing_attempts_server_content_types")]


@pytest.mark.django_db(transaction=True)
def test_client_content_types_are_replaced_by_the_servers(world):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Session = apps.get_model("recordings", "Session")
    RecordingFile = apps.get_model("recordings", "RecordingFile")
    Room = apps.get_model("projects", "Room")
    room = Room.objects.create(project_id=world.project.pk, name="old", settings={})
    session = Session.objects.create(
        project_id=world.project.pk, room=room, conf_num="100000000001"
    )
    given = {
        "page.html": ("individual", "text/html"),
        "alice.mp4": ("individual", "video/mp4"),
        "live.webm": ("live", "audio/webm"),
        "svg.mp4": ("live", "image/svg+xml"),
        "chat.json": ("chat", "text/html"),
        "metadata.json": ("metadata", ""),
    }
    for name, (kind, content_type) in given.items():
        RecordingFile.objects.create(
            session=session, project_id=world.project.pk, type=kind, name=name, size=1,
            sha256="0" * 64, storage_path=name, content_type=content_type,
        )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from recordings.models import RecordingFile as Current

    assert dict(Current.objects.values_list("name", "content_type")) == {
        "page.html": "application/octet-stream",
        "alice.mp4": "video/mp4",
        "live.webm": "audio/webm",
        "svg.mp4": "application/octet-stream",
        "chat.json": "application/json",
        "metadata.json": "application/json",
    }
