"""S3 destination against moto's real server (tests/servers/moto_s3.py): what
is special to S3 (multipart, ETag, parts kept for resuming, the form). What
every kind does is in the contract (tests/delivery/contract.py)."""

from __future__ import annotations

import threading

import pytest

from delivery.destinations.base import ResumePoint, TransferError
from delivery.destinations.s3 import S3Destination, S3Form
from tests.delivery import MB, Progress, random_file
from tests.servers.moto_s3 import MotoS3Server, s3, s3_server  # noqa: F401

PART = 5 * MB


@pytest.fixture
def dest(s3: MotoS3Server, request: pytest.FixtureRequest) -> S3Destination:  # noqa: F811
    with S3Destination(s3.destination_config(root=f"deliveries/{request.node.name}")) as d:
        d.multipart_threshold = d.multipart_chunksize = PART
        yield d


def body(s3: MotoS3Server, key: str) -> bytes:  # noqa: F811
    return s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def test_it_verifies_a_multipart_file_larger_than_the_part_size(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "transcoded.mp4", 4 * PART + 123)
    progress = Progress()
    dest.upload(local, "room1/42/transcoded.mp4", progress)
    head = s3.client().head_object(Bucket=s3.bucket, Key=f"{dest.root}/room1/42/transcoded.mp4")
    assert head["ETag"].strip('"').endswith("-5")
    assert progress.total == local.size
    assert dest.verify(local, "room1/42/transcoded.mp4") is True


def test_verify_is_false_when_missing_or_different(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "a.mp4", 2 * PART)
    assert dest.verify(local, "room1/42/a.mp4") is False
    dest.upload(local, "room1/42/a.mp4", Progress())
    same_size = random_file(tmp_path / "b.mp4", 2 * PART)
    assert dest.verify(same_size, "room1/42/a.mp4") is False
    small = random_file(tmp_path / "c.txt", 100)
    dest.upload(small, "room1/42/c.txt", Progress())
    assert dest.verify(random_file(tmp_path / "d.txt", 100), "room1/42/c.txt") is False


def test_verify_falls_back_to_the_etag_when_the_store_keeps_no_checksum(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "a.mp4", 2 * PART + 7)
    key = f"{dest.root}/a.mp4"
    dest._send_checksum = False
    dest.upload(local, "a.mp4", Progress())
    assert "ChecksumSHA256" not in s3.client().head_object(
        Bucket=s3.bucket, Key=key, ChecksumMode="ENABLED"
    )
    assert dest.verify(local, "a.mp4") is True
    assert dest.verify(random_file(tmp_path / "b.mp4", local.size), "a.mp4") is False


def test_verify_with_a_wrong_secret_is_a_permanent_error_without_showing_it(s3, tmp_path):  # noqa: F811
    """check() and upload() are in the contract; HEAD answers a bare 403."""
    secret = "wrong-secret-" + "x" * 27
    dest = S3Destination(s3.destination_config(secret_access_key=secret))
    with pytest.raises(TransferError) as caught:
        dest.verify(random_file(tmp_path / "b.txt", 10), "b.txt")
    assert caught.value.permanent and secret not in caught.value.message
    assert "check the access key id and secret access key" in caught.value.message


def test_it_rejects_an_unknown_access_key_permanently(s3, tmp_path):  # noqa: F811
    dest = S3Destination(s3.destination_config(access_key_id="AKIAUNKNOWN000000000"))
    with pytest.raises(TransferError) as caught:
        dest.check()
    assert caught.value.permanent
    assert "InvalidAccessKeyId" in caught.value.message


def test_a_missing_bucket_is_a_permanent_error(s3, tmp_path):  # noqa: F811
    dest = S3Destination(s3.destination_config(bucket="no-such-bucket"))
    with pytest.raises(TransferError) as caught:
        dest.upload(random_file(tmp_path / "a.txt", 10), "a.txt", Progress())
    assert caught.value.permanent
    assert "Bucket 'no-such-bucket' does not exist" in caught.value.message


class StopAfter:
    """A progress callback that lets ``parts`` parts through, then raises as
    the engine's does when the lease is lost (or the worker is stopping)."""

    def __init__(self, parts: int):
        self.left, self.total = parts, 0

    def __call__(self, count: int) -> None:
        if self.left <= 0:
            raise RuntimeError("lease lost")
        self.left -= 1
        self.total += count


def saved_point() -> tuple[ResumePoint, list[dict], list[str]]:
    saves: list[dict] = []
    notes: list[str] = []
    return ResumePoint(save=saves.append, note=notes.append), saves, notes


def parts_in_bucket(s3, state) -> list[int]:  # noqa: F811
    listing = s3.client().list_parts(Bucket=s3.bucket, Key=state["key"], UploadId=state["upload_id"])
    return [p["PartNumber"] for p in listing.get("Parts", [])]


def test_a_run_stopped_mid_upload_keeps_the_upload_and_the_next_sends_only_the_missing_parts(
    s3, dest, tmp_path  # noqa: F811
):
    local = random_file(tmp_path / "a.mp4", 6 * PART + 7)
    point, saves, _notes = saved_point()
    with pytest.raises(RuntimeError, match="lease lost"):
        dest.upload(local, "a.mp4", StopAfter(2), point)
    state = saves[0]
    assert state["key"] == f"{dest.root}/a.mp4" and state["upload_id"]
    assert [u["UploadId"] for u in s3.incomplete_uploads(dest.root)] == [state["upload_id"]]
    kept = parts_in_bucket(s3, state)
    assert len(kept) >= 2  # the two acknowledged, and any that were in flight

    again, _saves, notes = saved_point()
    again.state = dict(state)
    progress = Progress()
    dest.upload(local, "a.mp4", progress, again)
    assert progress.total == local.size - len(kept) * PART
    assert dest.verify(local, "a.mp4") is True
    assert s3.incomplete_uploads(dest.root) == []
    assert f"{len(kept)} of 7 parts are already in the bucket" in notes[0]


def test_a_part_whose_bytes_differ_is_sent_again(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "a.mp4", 4 * PART)
    point, saves, _notes = saved_point()
    with pytest.raises(RuntimeError):
        dest.upload(local, "a.mp4", StopAfter(2), point)
    state = saves[0]
    s3.client().upload_part(
        Bucket=s3.bucket, Key=state["key"], UploadId=state["upload_id"], PartNumber=1,
        Body=b"x" * PART, ChecksumAlgorithm="SHA256",
    )  # fmt: skip
    kept = parts_in_bucket(s3, state)
    progress = Progress()
    dest.upload(local, "a.mp4", progress, ResumePoint(state))
    assert progress.total == local.size - (len(kept) - 1) * PART
    assert dest.verify(local, "a.mp4") is True
    assert body(s3, state["key"]) == local.path.read_bytes()


def test_an_upload_gone_from_the_bucket_is_started_again(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "a.mp4", 3 * PART)
    point, saves, _notes = saved_point()
    with pytest.raises(RuntimeError):
        dest.upload(local, "a.mp4", StopAfter(1), point)
    state = saves[0]
    s3.client().abort_multipart_upload(Bucket=s3.bucket, Key=state["key"], UploadId=state["upload_id"])
    again, saves, notes = saved_point()
    again.state = dict(state)
    progress = Progress()
    dest.upload(local, "a.mp4", progress, again)
    assert progress.total == local.size
    assert "gone from the bucket" in notes[0]
    assert saves[-1]["upload_id"] != state["upload_id"]
    assert dest.verify(local, "a.mp4") is True


def test_parts_left_by_a_killed_worker_are_aborted_before_the_next_attempt(s3, dest, tmp_path):  # noqa: F811
    key = f"{dest.root}/a.mp4"
    s3.client().create_multipart_upload(Bucket=s3.bucket, Key=key)
    assert len(s3.incomplete_uploads(key)) == 1
    dest.upload(random_file(tmp_path / "a.mp4", 2 * PART), "a.mp4", Progress())
    assert s3.incomplete_uploads(key) == []


@pytest.mark.slow
def test_a_server_stopped_mid_transfer_is_transient_and_a_retry_succeeds(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "transcoded.mp4", 6 * PART)
    stopped = threading.Event()

    def stop_the_server(count: int) -> None:
        if not stopped.is_set():
            stopped.set()
            s3.stop()

    with pytest.raises(TransferError) as caught:
        dest.upload(local, "room1/42/transcoded.mp4", stop_the_server)
    assert stopped.is_set()
    assert not caught.value.permanent
    assert "Cannot reach" in caught.value.message

    s3.start()  # same port, same keys (moto forgets objects, so the bucket is new)
    dest.upload(local, "room1/42/transcoded.mp4", Progress())
    assert dest.verify(local, "room1/42/transcoded.mp4") is True
    assert s3.incomplete_uploads() == []


# -- the form ---------------------------------------------------------------------------
FORM = {
    "bucket": "recordings",
    "region": "eu-west-1",
    "access_key_id": "AKIAEXAMPLE",
    "secret_access_key": "s3cr3t",
    "root": "/portal/",
}


def test_the_form_accepts_a_complete_configuration():
    form = S3Form({**FORM, "sse": "aws:kms", "storage_class": "STANDARD_IA"})
    assert form.is_valid(), form.errors
    public, secrets = form.split()
    assert secrets == {"secret_access_key": "s3cr3t"}
    assert "secret_access_key" not in public and public["root"] == "portal"


def test_the_form_keeps_a_stored_secret_when_left_blank():
    form = S3Form(
        {**FORM, "secret_access_key": ""},
        initial={"access_key_id": "AKIAEXAMPLE"},
        stored_secrets=frozenset({"secret_access_key"}),
    )
    assert form.is_valid(), form.errors
    assert form.split()[1] == {}
    assert "s3cr3t" not in form.as_p()


def test_the_form_needs_the_secret_on_create():
    form = S3Form({**FORM, "secret_access_key": ""})
    assert not form.is_valid()
    assert "secret_access_key" in form.errors


def test_the_form_needs_a_new_secret_for_a_new_access_key_id():
    form = S3Form(
        {**FORM, "access_key_id": "AKIAOTHER", "secret_access_key": ""},
        initial={"access_key_id": "AKIAEXAMPLE"},
        stored_secrets=frozenset({"secret_access_key"}),
    )
    assert not form.is_valid()
    assert "secret_access_key" in form.errors


def test_the_form_rejects_an_address_as_bucket_and_needs_a_region_for_aws():
    form = S3Form({**FORM, "bucket": "s3://recordings", "region": ""})
    assert not form.is_valid()
    assert set(form.errors) == {"bucket", "region"}
    with_endpoint = S3Form({**FORM, "region": "", "endpoint_url": "http://127.0.0.1:9000"})
    assert with_endpoint.is_valid(), with_endpoint.errors

