"""What EnableX's developer docs and sample servers send, written down as data
for the contract tests (facts and field names from EnableX's public docs and
samples; no text of theirs)."""

from __future__ import annotations

import base64
import re

# `YYYY-MM-DDTHH:MM:SS.mmmZ`, as EnableX writes every time.
ENABLEX_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# Create Room, as EnableX's docs show the request body: every settings key,
# role_based_recording and live_recording as objects, sip and data objects.
DOCS_CREATE_ROOM = {
    "name": "Topic or Room Title",
    "owner_ref": "xyz",
    "settings": {
        "description": "Descriptive text",
        "mode": "group",
        "scheduled": False,
        "adhoc": False,
        "duration": 30,
        "moderators": "1",
        "participants": "5",
        "billing_code": "",
        "auto_recording": False,
        "quality": "SD",
        "canvas": False,
        "screen_share": False,
        "abwd": True,
        "max_active_talkers": 4,
        "knock": False,
        "wait_for_moderator": False,
        "media_zone": "US",
        "single_file_recording": False,
        "role_based_recording": {"moderator": "audiovideo", "participant": "audio"},
        "live_recording": {"auto_recording": True, "url": "https://your-custom-view-url"},
    },
    "sip": {"enabled": False},
    "data": {"custom_key": ""},
}

# The keys of one archive entry and of one CDR record in EnableX's docs.
ARCHIVE_KEYS = {"_id", "trans_date", "conf_num", "app_id", "room_id", "recording",
                "transcoded", "chatdata", "metadata"}  # fmt: skip
CDR_KEYS = {"trans_date", "conf_num", "call_num", "call_log_id", "room", "user", "sigserver",
            "published_track", "usage", "app_id", "cdr_id"}  # fmt: skip
CDR_ROOM_KEYS = {"room_id", "connect_dt", "disconnect_dt", "duration"}
CDR_USER_KEYS = {"ip", "name", "role", "ref", "agent", "token", "confName"}
CDR_USAGE_KEYS = {"subscribed_minutes", "published_minutes"}
ERROR_KEYS = {"result", "error", "desc"}


# The Python (Django) sample server's room: owner_ref is a string of digits,
# numbers inside settings are strings, two keys only it sends.
def python_sample_room(random_name: str) -> dict:
    return {
        "name": "Sample Room: " + random_name,
        "owner_ref": random_name,
        "settings": {
            "description": "",
            "quality": "SD",
            "mode": "group",
            "participants": "2",
            "duration": "60",
            "scheduled": False,
            "auto_recording": False,
            "active_talker": True,
            "wait_moderator": False,
            "adhoc": False,
        },
        "sip": {"enabled": False},
    }


# The PHP samples' room: owner_ref is PHP's rand(), a JSON *number*; no sip.
def php_sample_room(random_number: int, participants: str = "1") -> dict:
    return {
        "name": f"room for one to one video meeting: {random_number}",
        "owner_ref": random_number,
        "settings": {
            "scheduled": False,
            "adhoc": True,
            "moderators": "1",
            "participants": participants,
            "duration": "30",
            "quality": "SD",
            "auto_recording": False,
        },
    }


# The Node sample's room (one-to-one flavour).
NODE_SAMPLE_ROOM = {
    "name": "room for one to one video meeting",
    "owner_ref": "one to one github sample",
    "settings": {
        "description": "One-to-One-Video-Chat-Sample-Web-Application",
        "scheduled": False,
        "adhoc": True,
        "moderators": "1",
        "participants": "1",
        "duration": "30",
        "quality": "SD",
        "auto_recording": False,
    },
}


def basic_header(app_id: str, app_key: str) -> str:
    return "Basic " + base64.b64encode(f"{app_id}:{app_key}".encode()).decode()
