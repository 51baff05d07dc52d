"""Drive the ingest API over HTTP like a media server would, with real media."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recordings.simulation import generate_logs, generate_recordings, participant_names

TIMEOUT = (10, 600)


class Api:
    def __init__(self, base_url: str, app_id: str, app_key: str):
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.auth = (app_id, app_key)

    def call(self, method: str, path: str, **kwargs) -> dict:
        url = f"{self.base}{path}"
        try:
            response = self.http.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise CommandError(f"{method} {url} failed: {exc}; is the portal running?") from exc
        try:
            body = response.json()
        except ValueError:
            body = {"result": -1, "error": response.text[:200]}
        if response.status_code >= 400 or body.get("result") != 0:
            raise CommandError(
                f"{method} {url} answered {response.status_code}: "
                f"{body.get('error', body)} (result {body.get('result')})"
            )
        return body


class Command(BaseCommand):
    help = (
        "Simulate a recorded session: create the room through the Video API if needed, "
        "start a session, upload real per-participant recordings, a chat transcript and a "
        "metadata log through the ingest API, and end it. Prints CONF_NUM= and ROOM_ID=."
    )

    def add_arguments(self, parser):
        parser.add_argument("app_id")
        parser.add_argument("--room", default="Simulated room", help="room name (created if new)")
        parser.add_argument("--participants", type=int, default=3)
        parser.add_argument("--seconds", type=float, default=6.0)
        parser.add_argument("--base-url", default=settings.PUBLIC_BASE_URL)
        parser.add_argument(
            "--app-key", default=None, help="the project's APP_KEY (default: $APP_KEY)"
        )
        parser.add_argument("--width", type=int, default=640)
        parser.add_argument("--height", type=int, default=360)

    def handle(self, *args, app_id, room, participants, seconds, base_url, app_key, **options):
        app_key = app_key or os.environ.get("APP_KEY")
        if not app_key:
            raise CommandError(
                "Give the project's APP_KEY with --app-key or the APP_KEY environment variable "
                "(it is stored hashed, so it cannot be looked up)."
            )
        if seconds <= 0:
            raise CommandError("--seconds must be positive")
        try:
            names = participant_names(participants)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        api = Api(base_url, app_id, app_key)
        room_id = self.find_or_create_room(api, room)
        session = api.call("POST", f"/ingest/v1/rooms/{room_id}/sessions")
        conf_num = session["conf_num"]
        self.stdout.write(f"ROOM_ID={room_id}")
        self.stdout.write(f"CONF_NUM={conf_num}")
        if session["recording"] == "off":
            api.call("POST", f"/ingest/v1/sessions/{conf_num}/recording/start",
                     json={"role": "moderator"})  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="simulate-") as tmp:
            workdir = Path(tmp)
            files = generate_recordings(
                workdir, names, seconds, width=options["width"], height=options["height"]
            )
            files += generate_logs(workdir, names, seconds, room_id, conf_num)
            api.call("POST", f"/ingest/v1/sessions/{conf_num}/recording/stop",
                     json={"role": "moderator"})  # fmt: skip
            for sample in files:
                with open(sample.path, "rb") as fh:
                    stored = api.call(
                        "POST",
                        f"/ingest/v1/sessions/{conf_num}/files",
                        data={"type": sample.type, "participant": sample.participant},
                        files={"file": (sample.path.name, fh)},
                    )["file"]
                self.stdout.write(
                    f"UPLOADED={sample.type}:{stored['name']}:{stored['size']}", self.style.SUCCESS
                )
        ended = api.call("POST", f"/ingest/v1/sessions/{conf_num}/end")
        self.stdout.write(f"STATE={ended['state']}")

    def find_or_create_room(self, api: Api, name: str) -> str:
        found = api.call("GET", "/video/v2/rooms", params={"name": name, "per_page": 1})
        if found["rooms"]:
            return found["rooms"][0]["room_id"]
        created = api.call(
            "POST", "/video/v2/rooms",
            json={"name": name, "owner_ref": "simulate_session", "settings": {"mode": "group"},
                  "sip": {"enabled": False}},
        )  # fmt: skip
        return created["room"]["room_id"]
