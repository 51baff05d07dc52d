"""Azure Blob destination against Azurite (tests/servers/azurite.py): what is
special to Azure (blocks, SAS URLs and connection strings, the form). What
every kind does is in the contract (tests/delivery/contract.py)."""

from __future__ import annotations

import threading

import pytest

from delivery.destinations.azure import AzureBlobDestination, AzureBlobForm
from delivery.destinations.base import ResumePoint, TransferError
from tests.delivery import MB, Progress, random_file
from tests.servers.azurite import ACCOUNT_KEY, AzuriteServer, azurite, azurite_server  # noqa: F401

BLOCK = 4 * MB


@pytest.fixture
def dest(azurite: AzuriteServer, request: pytest.FixtureRequest) -> AzureBlobDestination:  # noqa: F811
    d = AzureBlobDestination(azurite.destination_config(root=f"deliveries/{request.node.name}"))
    d.max_block_size = d.max_single_put_size = BLOCK
    with d:
        yield d


def content(azurite: AzuriteServer, name: str) -> bytes:  # noqa: F811
    blob = azurite.service().get_blob_client(azurite.container, name)
    return blob.download_blob().readall()


def test_it_verifies_a_file_sent_in_many_blocks(azurite, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "transcoded.mp4", 5 * BLOCK + 99)
    progress = Progress()
    dest.upload(local, "room1/42/transcoded.mp4", progress)
    blob = azurite.service().get_blob_client(
        azurite.container, f"{dest.root}/room1/42/transcoded.mp4"
    )
    blocks, _uncommitted = blob.get_block_list()
    assert len(blocks) == 6
    assert progress.total == local.size
    assert dest.verify(local, "room1/42/transcoded.mp4") is True


def test_the_md5_is_computed_while_the_blocks_go_out_not_before(azurite, dest, tmp_path):  # noqa: F811
    """The blob's Content-MD5 costs 1.6 s of CPU per GiB: the first block must
    not wait for it. Here the MD5 can only finish once a block went out."""
    local = random_file(tmp_path / "transcoded.mp4", 4 * BLOCK + 7)
    local.sha256_hex()
    a_block_went = threading.Event()
    digest = local._digest

    def md5_after_a_block(algorithm: str) -> str:
        if algorithm == "md5" and not a_block_went.wait(10):
            raise AssertionError("no block was sent before the MD5 was done")
        return digest(algorithm)

    local._digest = md5_after_a_block  # type: ignore[method-assign]

    def progress(count: int) -> None:
        a_block_went.set()

    dest.upload(local, "room1/43/transcoded.mp4", progress)
    assert dest.verify(local, "room1/43/transcoded.mp4") is True
    assert content(azurite, f"{dest.root}/room1/43/transcoded.mp4") == local.path.read_bytes()


def test_verify_is_false_for_a_blob_without_content_md5(azurite, dest, tmp_path):  # noqa: F811
    """Missing and different blobs are in the contract; a blob written by
    someone else carries no Content-MD5 to compare, so it is not ours."""
    local = random_file(tmp_path / "a.mp4", 2 * BLOCK)
    foreign = azurite.service().get_blob_client(azurite.container, f"{dest.root}/foreign.mp4")
    foreign.stage_block("b1", local.path.read_bytes())
    foreign.commit_block_list(["b1"])  # same bytes, but no Content-MD5 to compare
    assert dest.verify(local, "foreign.mp4") is False


def test_it_works_with_a_connection_string_and_with_a_sas_url(azurite, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "a.txt", 1000)
    for config in (
        {"connection_string": azurite.connection_string, "container": "recordings", "root": "cs"},
        {"sas_url": azurite.container_sas_url(), "root": "sas"},
    ):
        with AzureBlobDestination(config) as dest:
            dest.upload(local, "room/1/a.txt", Progress())
            assert dest.verify(local, "room/1/a.txt") is True
            assert (
                dest.final_path("room/1/a.txt")
                == f"azure://devstoreaccount1/recordings/{config['root']}/room/1/a.txt"
            )


def test_it_rejects_a_read_only_sas_permanently_without_showing_it(azurite, tmp_path):  # noqa: F811
    sas_url = azurite.container_sas_url(write=False)
    dest = AzureBlobDestination({"sas_url": sas_url})
    with pytest.raises(TransferError) as caught:
        dest.check()
    assert caught.value.permanent
    assert "SAS URL" in caught.value.message
    signature = sas_url.split("sig=")[1]
    for text in (caught.value.message, repr(dest), dest.describe()):
        assert signature not in text and "sig=" not in text


def test_a_missing_container_is_a_permanent_error(azurite, tmp_path):  # noqa: F811
    dest = AzureBlobDestination(azurite.destination_config(container="no-such-container"))
    with pytest.raises(TransferError) as caught:
        dest.upload(random_file(tmp_path / "a.txt", 10), "a.txt", Progress())
    assert caught.value.permanent
    assert "Container 'no-such-container' does not exist" in caught.value.message


@pytest.mark.slow
def test_a_server_stopped_mid_transfer_is_transient_and_a_retry_succeeds(azurite, dest, tmp_path):  # noqa: F811
    local = random_file(tmp_path / "transcoded.mp4", 6 * BLOCK)
    stopped = threading.Event()
    dest.retry_total = 1
    dest.close()

    def stop_the_server(count: int) -> None:
        if not stopped.is_set():
            stopped.set()
            azurite.stop()

    with pytest.raises(TransferError) as caught:
        dest.upload(local, "room1/42/transcoded.mp4", stop_the_server)
    assert stopped.is_set()
    assert not caught.value.permanent

    azurite.start()  # same port; Azurite in memory forgets blobs, so the container is new
    dest.upload(local, "room1/42/transcoded.mp4", Progress())
    assert dest.verify(local, "room1/42/transcoded.mp4") is True


class StopAfter:
    """Lets ``blocks`` blocks through, then raises as the engine's progress
    callback does when the lease is lost."""

    def __init__(self, blocks: int):
        self.left = blocks

    def __call__(self, count: int) -> None:
        if self.left <= 0:
            raise RuntimeError("lease lost")
        self.left -= 1


def test_a_run_stopped_mid_upload_leaves_staged_blocks_the_next_run_does_not_send_again(
    azurite, dest, tmp_path  # noqa: F811
):
    local = random_file(tmp_path / "a.mp4", 6 * BLOCK + 5)
    saves: list[dict] = []
    with pytest.raises(RuntimeError, match="lease lost"):
        dest.upload(local, "a.mp4", StopAfter(2), ResumePoint(save=saves.append))
    name = f"{dest.root}/a.mp4"
    assert saves == [{"blob": name, "block_size": BLOCK}]
    blob = azurite.service().get_blob_client(azurite.container, name)
    _committed, staged = blob.get_block_list("all")
    assert len(staged) >= 2  # the two acknowledged, and any that were in flight
    assert dest.verify(local, "a.mp4") is False  # nothing visible yet

    notes: list[str] = []
    progress = Progress()
    dest.upload(local, "a.mp4", progress, ResumePoint(saves[0], note=notes.append))
    assert progress.total == local.size - len(staged) * BLOCK
    assert notes == [f"continuing the blob: {len(staged)} of 7 blocks are already staged, "
                     f"sending {7 - len(staged)}"]  # fmt: skip
    assert dest.verify(local, "a.mp4") is True
    assert content(azurite, name) == local.path.read_bytes()


# -- the form ---------------------------------------------------------------------------
KEY_FORM = {"account_name": "acct", "account_key": "a2V5", "container": "recordings", "root": "/x/"}


def test_the_form_accepts_each_single_way_to_authenticate():
    for data in (
        KEY_FORM,
        {
            "connection_string": "AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
            "container": "c1",
        },
        {"sas_url": "https://acct.blob.core.windows.net/recordings?sv=2024&sp=rwdl&sig=abc"},
    ):
        form = AzureBlobForm(data)
        assert form.is_valid(), form.errors
    assert form.cleaned_data["auth"] == "sas" and form.cleaned_data["container"] == "recordings"
    public, secrets = form.split()
    assert set(secrets) == {"sas_url"} and "sas_url" not in public


def test_the_form_refuses_two_or_no_ways_to_authenticate():
    both = AzureBlobForm({**KEY_FORM, "sas_url": "https://acct.blob.core.windows.net/c?sig=abc"})
    assert not both.is_valid()
    assert "exactly one way" in str(both.errors)
    none = AzureBlobForm({"container": "recordings"})
    assert not none.is_valid()
    explicit = AzureBlobForm({**KEY_FORM, "auth": "sas"})
    assert not explicit.is_valid()
    assert {"sas_url", "account_key"} <= set(explicit.errors)


def test_the_form_keeps_a_stored_secret_when_left_blank():
    form = AzureBlobForm({**KEY_FORM, "account_key": ""}, stored_secrets=frozenset({"account_key"}))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["auth"] == "key"
    assert form.split()[1] == {}
    assert "a2V5" not in form.as_p()


def test_the_form_can_switch_from_a_stored_key_to_a_new_sas_url():
    form = AzureBlobForm(
        {"sas_url": "https://acct.blob.core.windows.net/recordings?sv=1&sig=abc"},
        stored_secrets=frozenset({"account_key"}),
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["auth"] == "sas"


def test_the_form_needs_the_account_name_and_container_with_a_key():
    form = AzureBlobForm({"account_key": "a2V5"})
    assert not form.is_valid()
    assert {"account_name", "container"} <= set(form.errors)


def test_without_the_allowlist_a_connection_string_endpoint_is_refused(azurite, settings):  # noqa: F811
    """The account key configuration is in the contract."""
    config = {
        "auth": "connection_string",
        "container": azurite.container,
        "connection_string": (
            f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};"
            f"AccountKey={azurite.account_key};BlobEndpoint={azurite.endpoint_url};"
        ),
    }
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(TransferError) as refused:
        with AzureBlobDestination(config) as dest:
            dest.check()
    assert refused.value.permanent
    assert refused.value.message.startswith("127.0.0.1 is a loopback address")
