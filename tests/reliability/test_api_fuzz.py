"""Bad input: schemathesis against /api/schema/ of a real portal process for
every operation, with valid and with invalid credentials (zero 5xx, every
response documented and matching the schema), and odd names thrown at the
upload and archive routes (nothing escapes DATA_DIR, nothing crashes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.servers.portal import PortalProcesses

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def portal():
    processes = PortalProcesses()
    processes.setup()
    credentials = processes.create_project()
    processes.start_web()
    yield processes, credentials
    processes.stop()


def _openapi_document() -> dict:
    """The same document /api/schema/ serves (drf-spectacular), built in
    process so the tests can be generated at collection time; the calls go
    to the real server."""
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(_openapi_document())


def test_the_served_schema_is_the_one_fuzzed(portal):
    processes, _credentials = portal
    served = requests.get(f"{processes.public_url}/api/schema/?format=json", timeout=30).json()
    assert served["paths"].keys() == _openapi_document()["paths"].keys()


FUZZ_SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
# Every wrong key costs a full PBKDF2 check on the server (there is nothing to
# cache), and every answer is the same 401: fewer examples say as much.
WRONG_KEY_SETTINGS = settings(FUZZ_SETTINGS, max_examples=3)


def call_and_validate(case, portal, app_key: str | None) -> None:
    processes, credentials = portal
    auth = (credentials["APP_ID"], app_key or credentials["APP_KEY"])
    case.call_and_validate(base_url=processes.public_url, auth=auth, checks=CHECKS, timeout=30)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_answers_within_its_schema_with_the_app_key(case, portal):
    call_and_validate(case, portal, None)


@schema.parametrize()
@WRONG_KEY_SETTINGS
def test_every_operation_answers_within_its_schema_with_a_wrong_key(case, portal):
    call_and_validate(case, portal, "wrong-key")


ODD_NAMES = [
    "../../../etc/passwd",
    "..",
    "a/../../b.mp4",
    "/absolute.mp4",
    "nul\x00byte.mp4",
    "x" * 5000 + ".mp4",
    "ünïcødé-🎥.mp4",
    "..\\..\\windows.mp4",
    "  ",
    "%2e%2e%2fescape.mp4",
]


def files_outside(root: Path, data_dir: Path) -> list[str]:
    """Every file under root that is not inside data_dir."""
    escaped = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name).resolve()
            if data_dir not in path.parents:
                escaped.append(str(path))
    return escaped


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_odd_upload_names_stay_inside_data_dir(portal, name):
    processes, credentials = portal
    base = processes.public_url
    api = (credentials["APP_ID"], credentials["APP_KEY"])
    room = requests.post(f"{base}/video/v2/rooms", json={"name": "odd"}, auth=api, timeout=30)
    room_id = room.json()["room"]["room_id"]
    conf_num = requests.post(
        f"{base}/ingest/v1/rooms/{room_id}/sessions", auth=api, timeout=30
    ).json()["conf_num"]
    before = set(Path("/tmp").iterdir()) if Path("/tmp").exists() else set()
    response = requests.post(
        f"{base}/ingest/v1/sessions/{conf_num}/files", auth=api, timeout=30,
        data={"type": "chat", "participant": name[:300]},
        files={"file": (name, b"{}")},
    )  # fmt: skip
    assert response.status_code < 500, response.text
    assert response.json()["result"] == 0 or response.status_code >= 400
    data_dir = processes.data_dir.resolve()
    for new in set(Path("/tmp").iterdir()) - before:
        assert not new.name.startswith(("passwd", "escape", "windows")), new
    stored = data_dir / "recordings"
    assert files_outside(stored, data_dir) == []
    if response.status_code < 300:
        stored_name = response.json()["file"]["name"]
        assert "/" not in stored_name and "\\" not in stored_name and "\x00" not in stored_name
        assert stored_name not in ("", ".", "..") and len(stored_name) <= 255
        url = f"{base}/recordings/{credentials['APP_ID']}/{room_id}/{conf_num}/{requests.utils.quote(stored_name)}"
        rec = (credentials["RECORDING_USERNAME"], credentials["RECORDING_PASSWORD"])
        assert requests.get(url, auth=rec, timeout=30).content == b"{}"


@pytest.mark.parametrize(
    "path",
    [
        "archive/period/2026-01-01/../../etc",
        "archive/period/2026-13-40/2026-01-01",
        "archive/period/2026-02-01/2026-01-01",
        "archive/room/..%2f..%2fetc",
        "archive/room/" + "f" * 3000,
        "archive/conf_num/%00",
        "archive/conf_num/ünïcødé",
        "archive/room/abc/period/x/y",
    ],
)
def test_odd_archive_routes_answer_with_the_error_envelope(portal, path):
    processes, credentials = portal
    api = (credentials["APP_ID"], credentials["APP_KEY"])
    response = requests.get(f"{processes.public_url}/video/v2/{path}", auth=api, timeout=30)
    assert response.status_code in (400, 404), response.text[:300]
    if response.headers.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        assert body["result"] != 0 and body["error"]


def test_odd_recording_file_paths_never_escape(portal):
    processes, credentials = portal
    rec = (credentials["RECORDING_USERNAME"], credentials["RECORDING_PASSWORD"])
    app_id = credentials["APP_ID"]
    for path in [
        f"/recordings/{app_id}/x/y/..%2f..%2f..%2fsecrets%2fsecret_key",
        f"/recordings/{app_id}/../../secrets/secret_key",
        f"/recordings/{app_id}/a/b/%00",
    ]:
        response = processes.get(path, auth=rec)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert b"-secret-key-" not in response.content
