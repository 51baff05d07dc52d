"""Helpers for the ingest API tests: an authenticated Django test client."""

from __future__ import annotations

import base64
import json

from projects.models import Room
from webhooks.models import WebhookEndpoint


def basic(app_id: str, app_key: str) -> dict:
    token = base64.b64encode(f"{app_id}:{app_key}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


class Ingest:
    def __init__(self, client, app_id: str, app_key: str):
        self.client, self.auth = client, basic(app_id, app_key)

    def post(self, path: str, body=None, raw: str | None = None):
        data = raw if raw is not None else json.dumps(body) if body is not None else ""
        return self.client.post(
            f"/ingest/v1{path}", data=data, content_type="application/json", **self.auth
        )

    def start(self, room: Room) -> str:
        response = self.post(f"/rooms/{room.room_id}/sessions")
        assert response.status_code == 201, response.content
        return response.json()["conf_num"]

    def upload(self, conf_num: str, file, file_type: str = "individual", **fields):
        data = {"type": file_type, "file": file, **fields}
        return self.client.post(f"/ingest/v1/sessions/{conf_num}/files", data=data, **self.auth)

    def end(self, conf_num: str):
        return self.post(f"/sessions/{conf_num}/end")


def enable_webhook(project) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        project=project,
        url="http://127.0.0.1:9/hook",
        secret="whsec_" + base64.b64encode(b"0" * 24).decode(),
    )
