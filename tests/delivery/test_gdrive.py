"""Google Drive destination and OAuth helpers, with the real Google client
libraries against the local double of Google's OAuth server and Drive v3:
what is special to Drive (OAuth, folders by path or id, upload sessions,
tokens, races). What every kind does is in the contract
(tests/delivery/contract.py)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from delivery.destinations import destination_for
from delivery.destinations.base import LocalFile, ResumePoint, TransferError
from delivery.destinations.gdrive import (
    REVOKED_MESSAGE,
    GoogleAccountError,
    GoogleDriveDestination,
    GoogleDriveForm,
    GoogleGrantRevoked,
    parse_folder,
)
from delivery.destinations.gdrive import oauth as google_oauth
from tests.servers import gdrive_double as servers
from tests.servers.gdrive_double import DEFAULT_EMAIL

# Assigned rather than imported by name: ruff reports fixture parameters that
# shadow an imported name (F811).
gdrive_double = servers.gdrive_double
gdrive = servers.gdrive

REDIRECT = "http://portal.test/projects/app1/settings/delivery/google/callback/"
CHUNK = 256 * 1024


def make_file(tmp_path: Path, name: str, size: int) -> LocalFile:
    path = tmp_path / name
    data = os.urandom(size)
    path.write_bytes(data)
    return LocalFile(path=path, size=size, sha256=hashlib.sha256(data).hexdigest())


def open_dest(double, **config) -> GoogleDriveDestination:
    config.setdefault("refresh_token", double.grant())
    config.setdefault("account_email", DEFAULT_EMAIL)
    dest = destination_for("gdrive", config)
    assert isinstance(dest, GoogleDriveDestination)
    dest.chunk_size = CHUNK
    dest.retry_delay = 0
    dest.open()
    return dest


def deliver(dest, local: LocalFile, remote: str) -> list[int]:
    sent: list[int] = []
    dest.upload(local, remote, sent.append)
    assert dest.verify(local, remote)
    return sent


def content(double, path: str) -> bytes:
    [f] = double.walk(path)
    return f.content


# -- connecting an account ---------------------------------------------------------------------


def test_authorization_url_asks_for_offline_access_consent_drive_file_and_state(gdrive):
    url = google_oauth.authorization_url(REDIRECT, "state-123")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert url.startswith(gdrive.base_url + "o/oauth2/auth?")
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert query["include_granted_scopes"] == "true"
    assert query["scope"] == "https://www.googleapis.com/auth/drive.file"
    assert query["state"] == "state-123"
    assert query["redirect_uri"] == REDIRECT
    assert query["client_id"] == gdrive.client_id
    assert query["code_challenge_method"] == "S256"
    assert "client_secret" not in query


def test_following_consent_and_exchanging_the_code_gives_refresh_token_and_email(gdrive):
    gdrive.consent_email = "alice@example.com"
    url = google_oauth.authorization_url(REDIRECT, "state-abc")
    back = requests.get(url, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()}
    assert query["state"] == "state-abc"

    account = google_oauth.exchange_code(REDIRECT, query["code"], query["state"])

    assert account.email == "alice@example.com"
    assert account.refresh_token in gdrive.grants
    assert account.refresh_token not in repr(account)
    open_dest(gdrive, refresh_token=account.refresh_token, folder="Recordings")
    assert [f.name for f in gdrive.walk("Recordings", email="alice@example.com")] == ["Recordings"]


def connect(double, state: str = "s") -> google_oauth.ConnectedAccount:
    url = google_oauth.authorization_url(REDIRECT, state)
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return google_oauth.exchange_code(REDIRECT, query["code"], query["state"])


def test_extra_previously_granted_scopes_are_accepted(gdrive):
    gdrive.consent_scopes = ["openid", "email", google_oauth.DRIVE_FILE_SCOPE]
    account = connect(gdrive)
    assert account.email == DEFAULT_EMAIL


def test_a_grant_without_drive_access_is_refused_and_revoked(gdrive):
    gdrive.consent_scopes = ["openid"]  # the user unticked Drive on the consent screen
    with pytest.raises(
        google_oauth.GoogleOAuthError, match="Access to Google Drive was not granted"
    ):
        connect(gdrive)
    assert all(grant.revoked for grant in gdrive.grants.values())


def test_a_code_exchanged_with_another_state_fails_pkce_and_says_to_connect_again(gdrive):
    url = google_oauth.authorization_url(REDIRECT, "state-1")
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]

    with pytest.raises(google_oauth.GoogleOAuthError, match="Connect the Google account again"):
        google_oauth.exchange_code(REDIRECT, code, "state-2")


def test_a_code_cannot_be_used_twice(gdrive):
    url = google_oauth.authorization_url(REDIRECT, "s")
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    google_oauth.exchange_code(REDIRECT, code, "s")

    with pytest.raises(google_oauth.GoogleOAuthError) as err:
        google_oauth.exchange_code(REDIRECT, code, "s")
    assert code not in err.value.message


def test_missing_client_settings_say_which_settings_to_set(gdrive, settings):
    settings.GOOGLE_OAUTH_CLIENT_ID = ""
    with pytest.raises(google_oauth.GoogleOAuthError, match="GOOGLE_OAUTH_CLIENT_ID"):
        google_oauth.authorization_url(REDIRECT, "s")


def test_revoke_ends_the_grant_and_a_second_revoke_reports_nothing_left(gdrive):
    token = gdrive.grant()
    assert google_oauth.revoke(token) is True
    assert gdrive.grants[token].revoked
    assert google_oauth.revoke(token) is False


# -- delivering -----------------------------------------------------------------------------


def test_upload_lands_in_folder_root_room_conf_and_verifies(gdrive, tmp_path):
    local = make_file(tmp_path, "transcoded.mp4", 3 * CHUNK + 1234)
    dest = open_dest(gdrive, folder="Recordings/Portal", root="client-a")

    sent = deliver(dest, local, "room1/1001/transcoded.mp4")

    assert sum(sent) == local.size
    assert len(sent) == 4  # one progress report per chunk
    assert content(gdrive, "Recordings/Portal/client-a/room1/1001/transcoded.mp4") == (
        local.path.read_bytes()
    )
    [f] = gdrive.walk("Recordings/Portal/client-a/room1/1001/transcoded.mp4")
    assert f.mimeType == "video/mp4"
    assert dest.final_path("room1/1001/transcoded.mp4") == (
        "gdrive://Recordings/Portal/client-a/room1/1001/transcoded.mp4"
    )
    dest.close()


def test_a_folder_path_is_created_once_and_then_reused(gdrive, tmp_path):
    dest = open_dest(gdrive, folder="Recordings/Portal")
    deliver(dest, make_file(tmp_path, "a.json", 10), "room1/1001/a.json")
    dest.close()
    created = gdrive.counts["files.create.folder"]
    assert created == 4

    again = open_dest(gdrive, folder="Recordings/Portal")
    deliver(again, make_file(tmp_path, "b.json", 10), "room1/1001/b.json")

    assert gdrive.counts["files.create.folder"] == created
    assert sorted(
        f.name for f in gdrive.children(gdrive.walk("Recordings/Portal/room1/1001")[0].id)
    ) == [
        "a.json",
        "b.json",
    ]


def test_a_folder_id_is_used_as_is(gdrive, tmp_path):
    folder_id = gdrive.make_folder("Made by the portal earlier")
    dest = open_dest(gdrive, folder=folder_id)

    deliver(dest, make_file(tmp_path, "chat.json", 100), "room1/1001/chat.json")

    assert gdrive.counts["files.create.folder"] == 3  # the seed folder, room1, 1001
    assert content(gdrive, "Made by the portal earlier/room1/1001/chat.json")
    assert dest.final_path("room1/1001/chat.json") == f"gdrive://{folder_id}/room1/1001/chat.json"


def test_an_unknown_folder_id_is_a_permanent_error_suggesting_a_path(gdrive):
    with pytest.raises(TransferError) as err:
        open_dest(gdrive, folder="1NotAFolderTheDoubleKnowsAbout_xyz")
    assert err.value.permanent
    assert "give a folder path instead" in err.value.message


def test_uploading_again_updates_the_file_instead_of_duplicating_it(gdrive, tmp_path):
    dest = open_dest(gdrive, folder="Recordings")
    deliver(dest, make_file(tmp_path, "v1.bin", CHUNK + 5), "r/1/transcoded.mp4")
    newer = make_file(tmp_path, "v2.bin", 2 * CHUNK + 7)

    deliver(dest, newer, "r/1/transcoded.mp4")

    assert content(gdrive, "Recordings/r/1/transcoded.mp4") == newer.path.read_bytes()
    assert gdrive.counts["files.update"] == 1


def test_check_sends_one_small_upload_and_one_delete(gdrive):
    """That the probe is written and removed under folder/root is in the contract."""
    dest = open_dest(gdrive, folder="Recordings", root="probe-here")

    dest.check()

    assert gdrive.counts["upload.multipart"] == 1
    assert gdrive.counts["files.delete"] == 1


@pytest.mark.parametrize("mode", ["drop", "503", "lost_response"])
def test_an_interrupted_upload_resumes_and_arrives_intact(gdrive, tmp_path, mode):
    local = make_file(tmp_path, "big.mp4", 5 * CHUNK + 99)
    dest = open_dest(gdrive)
    gdrive.fail_next_chunks(2, mode)

    sent = deliver(dest, local, "r/1/big.mp4")

    assert content(gdrive, "r/1/big.mp4") == local.path.read_bytes()
    assert sum(sent) == local.size
    assert gdrive.counts["upload.status"] >= 2  # asked Google where to resume
    assert gdrive.counts["upload.start"] == 1  # one upload session, resumed


def test_a_lost_answer_to_the_last_chunk_leaves_one_complete_file(gdrive, tmp_path):
    local = make_file(tmp_path, "last.mp4", 2 * CHUNK)
    dest = open_dest(gdrive)
    gdrive.fail_next_chunks(2, "lost_response")  # both chunks stored, both answers lost

    deliver(dest, local, "r/1/last.mp4")

    assert content(gdrive, "r/1/last.mp4") == local.path.read_bytes()
    assert gdrive.counts["files.create"] == 1
    assert gdrive.counts["upload.chunk"] == 2  # the status query found the file complete


def stop_after(chunks: int):
    """A progress callback that lets ``chunks`` through, then raises as the
    engine's does when its lease is lost (a killed worker stops the same way)."""
    seen: list[int] = []

    def progress(count: int) -> None:
        if len(seen) >= chunks:
            raise RuntimeError("lease lost")
        seen.append(count)

    return progress


def test_a_later_run_continues_the_saved_upload_session_where_google_says(gdrive, tmp_path):
    local = make_file(tmp_path, "big.mp4", 6 * CHUNK + 99)
    saves: list[dict] = []
    with pytest.raises(RuntimeError, match="lease lost"):
        open_dest(gdrive).upload(local, "r/1/big.mp4", stop_after(2), ResumePoint(save=saves.append))
    state = saves[-1]
    assert set(state) == {"session", "path", "size"} and "upload_id=" in state["session"]
    assert gdrive.walk("r/1/big.mp4") == []  # nothing visible yet

    notes: list[str] = []
    sent: list[int] = []
    later = open_dest(gdrive)  # another worker: a new connection, the row's state
    later.upload(local, "r/1/big.mp4", sent.append, ResumePoint(state, note=notes.append))
    assert later.verify(local, "r/1/big.mp4")
    assert content(gdrive, "r/1/big.mp4") == local.path.read_bytes()
    assert gdrive.counts["upload.start"] == 1  # the same session, continued
    assert gdrive.counts["upload.status"] == 1
    assert sum(sent) == local.size - 3 * CHUNK  # three chunks were stored before the stop
    assert notes == [f"continuing the upload session at byte {3 * CHUNK} of {local.size}"]
    assert not any("upload_id" in note for note in notes)


def test_an_expired_upload_session_starts_the_file_again(gdrive, tmp_path):
    local = make_file(tmp_path, "big.mp4", 2 * CHUNK)
    dest = open_dest(gdrive)
    expired = {"session": gdrive.base_url + "upload/drive/v3/files?uploadType=resumable&upload_id=gone",
               "path": "r/1/big.mp4", "size": local.size}  # fmt: skip
    notes: list[str] = []
    saves: list[dict] = []
    sent: list[int] = []
    dest.upload(local, "r/1/big.mp4", sent.append, ResumePoint(expired, save=saves.append, note=notes.append))
    assert dest.verify(local, "r/1/big.mp4")
    assert sum(sent) == local.size
    assert notes == ["the upload session expired; starting the file again"]
    assert saves[0] == {} and saves[-1]["session"] != expired["session"]


def test_an_upload_that_keeps_failing_gives_up_with_a_transient_error(gdrive, tmp_path):
    local = make_file(tmp_path, "big.mp4", 2 * CHUNK)
    dest = open_dest(gdrive)
    dest.max_retries = 2
    gdrive.fail_next_chunks(10, "503")

    with pytest.raises(TransferError) as err:
        dest.upload(local, "r/1/big.mp4", lambda n: None)

    assert not err.value.permanent
    assert "gave up after 2 retries" in err.value.message
    assert "upload_id" not in err.value.message
    assert gdrive.walk("r/1/big.mp4") == []


def test_an_expired_access_token_is_refreshed_automatically(gdrive, tmp_path):
    dest = open_dest(gdrive)
    deliver(dest, make_file(tmp_path, "a.bin", CHUNK + 1), "r/1/a.bin")
    refreshes = gdrive.counts["token.refresh"]
    gdrive.expire_access_tokens()

    deliver(dest, make_file(tmp_path, "b.bin", 2 * CHUNK + 1), "r/1/b.bin")

    assert gdrive.counts["token.refresh"] == refreshes + 1
    assert content(gdrive, "r/1/b.bin") == (tmp_path / "b.bin").read_bytes()


def test_a_revoked_grant_is_a_permanent_reconnect_error(gdrive, tmp_path):
    token = gdrive.grant()
    dest = open_dest(gdrive, refresh_token=token)
    gdrive.revoke_all()
    gdrive.expire_access_tokens()

    with pytest.raises(GoogleGrantRevoked) as err:
        dest.upload(make_file(tmp_path, "a.bin", 10), "r/1/a.bin", lambda n: None)

    assert err.value.permanent and err.value.needs_reconnect
    assert err.value.message == REVOKED_MESSAGE
    assert token not in str(err.value)
    with pytest.raises(GoogleGrantRevoked):
        open_dest(gdrive, refresh_token=token)


def test_a_destination_without_a_connected_account_asks_to_connect(gdrive):
    with pytest.raises(GoogleAccountError, match="connect a Google account") as err:
        open_dest(gdrive, refresh_token="")
    assert err.value.permanent


def test_two_threads_delivering_into_a_new_conference_create_one_folder_each(gdrive, tmp_path):
    files = [make_file(tmp_path, f"f{i}.bin", 1000 + i) for i in range(4)]
    dests = [open_dest(gdrive, folder="Recordings") for _ in files]
    start = threading.Barrier(len(files))
    errors: list[BaseException] = []

    def run(dest, local):
        try:
            start.wait()
            deliver(dest, local, f"room9/2002/{local.path.name}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(dests, files, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert len(gdrive.walk("Recordings/room9")) == 1
    [conf] = gdrive.walk("Recordings/room9/2002")
    assert sorted(f.name for f in gdrive.children(conf.id)) == [f.path.name for f in files]
    assert gdrive.counts["files.create.folder"] == 3


def _deliver_in_child(settings_values: dict, config: dict, path: str, remote: str, out) -> None:
    from django.conf import settings

    for key, value in settings_values.items():
        setattr(settings, key, value)
    try:
        dest = GoogleDriveDestination(config)
        dest.retry_delay = 0
        dest.open()
        size = os.path.getsize(path)
        dest.upload(LocalFile(Path(path), size), remote, lambda n: None)
        out.put(("ok", dest.verify(LocalFile(Path(path), size), remote)))
    except BaseException as exc:
        out.put(("error", repr(exc)))


def test_two_processes_racing_to_create_a_folder_converge_on_one(gdrive, settings, tmp_path):
    token = gdrive.grant()
    values = {k: getattr(settings, k) for k in dir(settings) if k.startswith("GOOGLE_")}
    config = {"refresh_token": token, "folder": "Shared", "account_email": DEFAULT_EMAIL}
    gdrive.hold_folder_creates(2)  # both creators pass "not found" before either creates
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = []
    for i in range(2):
        local = make_file(tmp_path, f"p{i}.bin", 2000 + i)
        args = (values, config, str(local.path), f"room7/3003/p{i}.bin", out)
        procs.append(ctx.Process(target=_deliver_in_child, args=args))
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)

    assert results == [("ok", True), ("ok", True)]
    assert len(gdrive.walk("Shared")) == 1
    assert len(gdrive.walk("Shared/room7")) == 1
    [conf] = gdrive.walk("Shared/room7/3003")
    assert sorted(f.name for f in gdrive.children(conf.id)) == ["p0.bin", "p1.bin"]
    assert gdrive.counts["files.create.folder"] == 6  # each level was created twice...
    assert gdrive.counts["files.delete"] == 3  # ...and each loser removed its own copy


# -- configuration -----------------------------------------------------------------------------


def test_the_form_needs_no_refresh_token_and_accepts_a_folder_link():
    form = GoogleDriveForm(
        data={
            "folder": "https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz012",
            "root": "",
        }
    )
    assert form.is_valid(), form.errors
    public, secrets = form.split()
    assert public["folder"] == "1AbCdEfGhIjKlMnOpQrStUvWxYz012"
    assert secrets == {}


def test_the_form_keeps_the_connected_email_read_only():
    form = GoogleDriveForm(
        data={"folder": "Recordings/Portal", "account_email": "mallory@example.com"},
        initial={"account_email": "alice@example.com"},
    )
    assert form.is_valid(), form.errors
    public, _secrets = form.split()
    assert public["account_email"] == "alice@example.com"
    assert public["folder"] == "Recordings/Portal"


def test_folder_values_are_read_as_ids_links_or_paths():
    assert parse_folder("1AbCdEfGhIjKlMnOpQrStUvWxYz012") == ("1AbCdEfGhIjKlMnOpQrStUvWxYz012", [])
    assert parse_folder("Recordings/Portal") == (None, ["Recordings", "Portal"])
    assert parse_folder("/RecordingsFromThePortalForAcme2024") == (
        None,
        ["RecordingsFromThePortalForAcme2024"],
    )
    assert parse_folder("") == (None, [])


def test_folder_names_with_quotes_are_escaped_in_queries(gdrive, tmp_path):
    dest = open_dest(gdrive, folder="O'Brien's \\ recordings")
    deliver(dest, make_file(tmp_path, "a.bin", 10), "r/1/a.bin")
    assert content(gdrive, "O'Brien's \\ recordings/r/1/a.bin")


def test_without_the_allowlist_the_overridden_revoke_url_is_refused(gdrive, settings):
    """Delivering to the overridden Drive URLs is refused in the contract."""
    token = gdrive.grant()
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(google_oauth.GoogleOAuthError, match="127.0.0.1 is a loopback address"):
        google_oauth.revoke(token)


def test_without_the_allowlist_the_token_exchange_is_refused(gdrive, settings):
    url = google_oauth.authorization_url(REDIRECT, "s")
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(google_oauth.GoogleOAuthError, match="127.0.0.1 is a loopback address"):
        google_oauth.exchange_code(REDIRECT, query["code"], query["state"])
    assert not gdrive.grants
