"""simulate_session end to end against a live server: Video API, ingest API,
processing (django-q2 in sync mode) and the webhook messages."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django_q.conf import Conf

from projects.models import Room
from recordings.media import probe
from recordings.models import RecordingFile, Session
from webhooks.models import WebhookMessage

from .ingest_client import enable_webhook


def simulate(world, live_server, *args: str) -> dict[str, str]:
    out = io.StringIO()
    call_command(
        "simulate_session", world.app_id, "--base-url", live_server.url,
        f"--app-key={world.created.app_key}", "--width", "320", "--height", "180",
        *args, stdout=out,
    )  # fmt: skip
    lines = [line.split("=", 1) for line in out.getvalue().splitlines() if "=" in line]
    return {key: value for key, value in lines}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_simulated_session_is_ingested_processed_and_announced(
    world, live_server, settings, monkeypatch
):
    monkeypatch.setattr(Conf, "SYNC", True)  # processing runs inside the end request
    enable_webhook(world.project)

    result = simulate(world, live_server, "--room", "Sim", "--participants", "3",
                      "--seconds", "3")  # fmt: skip

    room = Room.objects.get(room_id=result["ROOM_ID"], project=world.project)
    assert room.name == "Sim"
    session = Session.objects.get(conf_num=result["CONF_NUM"])
    assert session.state == Session.State.READY, session.processing_error
    assert session.participant_count == 3
    types = sorted(session.files.values_list("type", flat=True))
    assert types == ["chat", "individual", "individual", "individual", "metadata", "transcoded"]
    transcoded = session.files.get(type=RecordingFile.Type.TRANSCODED)
    path = Path(settings.RECORDINGS_ROOT) / transcoded.storage_path
    assert probe(path).duration == pytest.approx(3.0, abs=1.0)
    events = set(WebhookMessage.objects.values_list("event_type", flat=True))
    assert {"recording", "transcoded"} <= events

    again = simulate(world, live_server, "--room", "Sim", "--participants", "1",
                     "--seconds", "1")  # fmt: skip
    assert again["ROOM_ID"] == result["ROOM_ID"]
    assert again["CONF_NUM"] != result["CONF_NUM"]


def test_simulate_session_needs_the_app_key(world, monkeypatch):
    monkeypatch.delenv("APP_KEY", raising=False)
    with pytest.raises(CommandError, match="APP_KEY"):
        call_command("simulate_session", world.app_id, "--base-url", "http://127.0.0.1:9")


def test_simulate_session_says_when_the_server_is_down(world):
    with pytest.raises(CommandError, match="is the portal running"):
        call_command(
            "simulate_session", world.app_id, "--base-url", "http://127.0.0.1:9",
            "--app-key", "x",
        )  # fmt: skip


@pytest.mark.slow
def test_fill_demo_records_one_session_once(db, settings):
    call_command("setup_demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("fill_demo", "--seconds", "2", stdout=out)
    assert "DEMO_SESSION=ready" in out.getvalue()
    assert (Path(settings.DATA_DIR) / "secrets" / "demo_app_key").exists()
    call_command("fill_demo", stdout=out)
    assert "DEMO_SESSION=exists" in out.getvalue()
    assert Session.objects.count() == 1
