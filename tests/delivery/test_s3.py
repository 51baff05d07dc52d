"""S3 destination against moto's real server (tests/servers/moto_s3.py)."""

from __future__ import annotations

import threading

import pytest

from delivery.destinations import destination_class
from delivery.destinations.base import TransferError
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


def test_the_registry_points_at_this_class():
    assert destination_class("s3") is S3Destination


def test_it_uploads_a_file_to_root_room_conf_name(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "chat.txt", 3000)
    progress = Progress()
    dest.upload(local, "room1/42/chat.txt", progress)
    key = f"{dest.root}/room1/42/chat.txt"
    assert body(s3, key) == local.path.read_bytes()
    assert progress.total == 3000
    assert dest.verify(local, "room1/42/chat.txt") is True
    assert dest.final_path("room1/42/chat.txt") == f"s3://recordings/{key}"


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


def test_check_writes_and_removes_a_probe(s3, dest):  # noqa: F811
    assert "recordings" in dest.check()
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=dest.root)
    assert listing.get("KeyCount", 0) == 0


def test_it_rejects_a_wrong_secret_permanently_without_showing_it(s3, tmp_path):  # noqa: F811
    secret = "wrong-secret-" + "x" * 27
    dest = S3Destination(s3.destination_config(secret_access_key=secret))
    with pytest.raises(TransferError) as caught:
        dest.upload(random_file(tmp_path / "a.txt", 10), "a.txt", Progress())
    assert caught.value.permanent
    assert (
        f"S3 rejected the access key '{s3.access_key_id}' for bucket 'recordings'"
        in caught.value.message
    )
    assert secret not in caught.value.message
    assert secret not in repr(dest) and secret not in str(dest)
    with pytest.raises(TransferError) as caught:
        dest.check()
    assert caught.value.permanent and secret not in caught.value.message
    with pytest.raises(TransferError) as caught:  # HEAD answers a bare 403
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


def test_a_failed_upload_leaves_no_incomplete_multipart_upload(s3, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "a.mp4", 4 * PART)

    def lease_lost(count: int) -> None:
        raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        dest.upload(local, "a.mp4", lease_lost)
    assert s3.incomplete_uploads(dest.root) == []
    assert dest.verify(local, "a.mp4") is False


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


def test_repr_and_describe_never_show_the_secret(s3):  # noqa: F811
    config = s3.destination_config(root="/a/b/")
    dest = S3Destination(config)
    for text in (repr(dest), str(dest), dest.describe()):
        assert config["secret_access_key"] not in text
    assert dest.describe() == f"s3://recordings/a/b at {s3.endpoint_url}"


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


def test_without_the_allowlist_the_loopback_server_is_refused(s3, settings):  # noqa: F811
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(TransferError) as refused:
        with S3Destination(s3.destination_config()) as dest:
            dest.check()
    assert refused.value.permanent
    assert refused.value.message.startswith("127.0.0.1 is a loopback address")


def test_the_guard_also_refuses_at_connect_time(s3, settings, monkeypatch):  # noqa: F811
    """Past the early check (as after a DNS change), botocore's own
    connections meet the guard and the error is permanent, not retried."""
    dest = S3Destination(s3.destination_config())
    dest.open()
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(TransferError) as refused:
        dest.check()
    assert refused.value.permanent
    assert refused.value.message.startswith("127.0.0.1 is a loopback address")
