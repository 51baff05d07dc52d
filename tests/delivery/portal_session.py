"""Drive a whole session through a running portal (tests/servers/portal.py
PortalProcesses) as the media server would: create a room and a session,
upload the participants' recordings, chat and metadata, end it. Shared by the
end-to-end announce-once test and bench/latency.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

from recordings.samples import (
    generate_chat_transcript,
    generate_metadata_log,
    generate_participant_media,
)

# Loopback servers (webhook receiver, moto, sshd) pass the egress guard only
# when exempted, as in the demo.
PORTAL_ENV = {"OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8"}


@dataclass
class Media:
    """Files of one session, made once and uploaded as often as needed."""

    individual: list[tuple[str, Path]]
    chat: Path
    metadata: Path


def make_media(folder: Path, *, participants: int, seconds: float) -> Media:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"P{i}" for i in range(participants)]
    individual = []
    for index, name in enumerate(names):
        path = folder / f"{name}.mp4"
        generate_participant_media(
            path, name=name, seconds=seconds, index=index, width=320, height=180
        )
        individual.append((name, path))
    chat, metadata = folder / "chat.json", folder / "metadata.json"
    generate_chat_transcript(chat, names, seconds)
    generate_metadata_log(metadata, names, seconds, "room", "conf")
    return Media(individual, chat, metadata)


class PortalClient:
    def __init__(self, base: str, app_id: str, app_key: str):
        self.base, self.auth = base, (app_id, app_key)

    def post(self, path: str, **kwargs) -> dict:
        response = requests.post(self.base + path, auth=self.auth, timeout=120, **kwargs)
        body = response.json()
        assert body.get("result") == 0, f"{path}: {response.status_code} {response.text[:300]}"
        return body

    def room(self, name: str = "Bench") -> str:
        body = self.post("/video/v2/rooms", json={
            "name": name, "owner_ref": "x", "settings": {"auto_recording": True},
            "sip": {"enabled": False},
        })  # fmt: skip
        return body["room"]["room_id"]

    def start(self, room_id: str) -> str:
        return self.post(f"/ingest/v1/rooms/{room_id}/sessions")["conf_num"]

    def upload(self, conf_num: str, media: Media) -> None:
        parts = [("individual", name, path) for name, path in media.individual]
        parts += [("chat", "", media.chat), ("metadata", "", media.metadata)]
        for file_type, participant, path in parts:
            content_type = "video/mp4" if file_type == "individual" else "application/json"
            with open(path, "rb") as fh:
                self.post(
                    f"/ingest/v1/sessions/{conf_num}/files",
                    data={"type": file_type, "participant": participant},
                    files={"file": (path.name, fh, content_type)},
                )

    def end(self, conf_num: str) -> float:
        """End the session; returns the moment (time.monotonic) it was ended."""
        self.post(f"/ingest/v1/sessions/{conf_num}/end")
        return time.monotonic()


def file_transfers(receiver, conf_num: str | None = None) -> list[dict]:
    bodies = [r.json() for r in list(receiver.requests)]
    return [
        b for b in bodies
        if b.get("type") == "file_transfer" and conf_num in (None, b.get("conf_num"))
    ]  # fmt: skip
