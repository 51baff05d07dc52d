"""The body and headers of one webhook request, signed per the Standard
Webhooks spec (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
The ``webhook-id`` is the message's id, kept across retries and manual
resends so receivers can deduplicate."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks import Webhook

from .models import WebhookEndpoint, WebhookMessage

USER_AGENT = "RecordingDeliveryPortal-Webhooks/1"


def signed_request(endpoint: WebhookEndpoint, message: WebhookMessage) -> tuple[bytes, dict]:
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = datetime.now(tz=UTC)
    signature = Webhook(endpoint.secret).sign(message.msg_id, sent_at, body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers
