"""The contract every destination kind honours, run by each kind against its
real server (tests/delivery/test_contract.py gives one ``Harness`` per kind).

A harness knows its server: the configuration of a destination under a root
of its own, how to read back what arrived there, and the kind's documented
capabilities. Where a kind cannot do something the contract branches on the
capability and asserts the documented alternative (SCP cannot resume: it
sends the file again and says so; FTP verifies the size only; a local folder
has no credentials and no network address). Per-kind files keep only what is
special to the kind.

Destination classes come from the registry (``destination_class``), never
from module paths, and nothing here patches a destination's internals.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from delivery.destinations import destination_class
from delivery.destinations.base import Destination, LocalFile, ResumePoint, TransferError
from tests.delivery import MB, Progress, random_file

LOOPBACK_REFUSED = "127.0.0.1 is a loopback address"

# Raw names as a hostile recorder (or participant) could send them; ingest
# cleans them (recordings.actions.sessions.clean_file_name) and the cleaned
# name must then land exactly where it says, inside the root, on every kind.
HOSTILE_NAMES = [
    "../../../escape.mp4",
    "..\\..\\windows-escape.mp4",
    "-rf --no-preserve-root.mp4",
    "$(touch pwned); rm -rf ~ `id` | cat.mp4",
    'O\'Brien "quoted" & <tag>.mp4',
    "Zoë 会议 ✓.mp4",
    "a%2F..%2Fb*?.mp4",
    "x" * 300 + ".mp4",
]


@dataclass
class Refusal:
    """A configuration the kind must refuse, and how."""

    config: dict[str, Any]
    words: str  # in the message
    permanent: bool
    secret: str = ""  # a secret value that must not appear anywhere
    match: str = "in"  # or "start": the message starts with words; "whole": is words

    def assert_matches(self, error: TransferError) -> None:
        assert error.permanent is self.permanent
        if self.match == "whole":
            assert error.message == self.words
        elif self.match == "start":
            assert error.message.startswith(self.words)
        else:
            assert self.match == "in" and self.words in error.message


class Harness:
    """One kind on its real server. Subclasses fill in the blanks."""

    kind: ClassVar[str]
    # "checksum": verify compares content; "size": the service gives no
    # checksum and verify compares sizes only (documented in verify()).
    verifies: ClassVar[str] = "checksum"
    # "continues": an interrupted upload is continued from its ResumePoint;
    # "restarts": the kind cannot continue and sends the whole file again.
    resumes: ClassVar[str] = "continues"
    # What a kind that restarts writes in the delivery log (``{name}``: file name).
    restart_note: ClassVar[str | None] = None
    # False for a local folder: no address, so the egress guard has no say.
    network: ClassVar[bool] = True
    # True: one session (FTP control connection, SSH transport) per open();
    # False: connections are made per request (HTTP APIs).
    keeps_connection: ClassVar[bool] = False
    # The class's name (as the package exports it).
    class_name: ClassVar[str]
    # The kind's transfer unit (a part, a block, a chunk): an interrupted
    # upload uses a file of a few of these.
    unit: ClassVar[int] = MB
    # Known bugs the contract exposes: test name -> what is wrong. The test is
    # then a strict xfail, so it fails (and the entry must go) once fixed.
    known_bugs: ClassVar[dict[str, str]] = {}

    root: str = ""

    # -- configuration --------------------------------------------------------------
    def config(self, **overrides: Any) -> dict[str, Any]:
        raise NotImplementedError

    def make(self, config: dict[str, Any] | None = None) -> Destination:
        """A destination of the kind (not opened), tuned for small test files."""
        dest = destination_class(self.kind)(self.config() if config is None else config)
        self.tune(dest)
        return dest

    def tune(self, dest: Destination) -> None:
        """Shrink part / block / chunk sizes to ``unit`` (the kind's public knobs)."""

    # -- reading the server ---------------------------------------------------------
    def read(self, remote: str) -> bytes | None:
        """What arrived at <root>/<remote>, or None if nothing is there."""
        raise NotImplementedError

    def listing(self, folder: str) -> list[str]:
        """Names (files and folders, hidden ones included) in <root>/<folder>."""
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """What half-sent uploads left under the root: temporary files,
        unfinished multipart uploads, uncommitted blocks."""
        raise NotImplementedError

    def everything(self) -> set[str]:
        """Every file on the server this harness can see, root or not."""
        raise NotImplementedError

    def inside(self, path: str) -> bool:
        """Whether ``path`` (from everything()) lies under the root."""
        raise NotImplementedError

    def tamper(self, remote: str) -> None:
        """Change the bytes of <root>/<remote>, keeping its size."""
        raise NotImplementedError

    # -- expectations ---------------------------------------------------------------
    def final_path(self, remote: str) -> str:
        raise NotImplementedError

    def description(self) -> str:
        raise NotImplementedError

    check_words: str = ""  # in the message of a successful check()

    def secrets(self) -> list[str]:
        """The secret values in ``config()``."""
        return []

    def bad_credentials(self) -> Refusal | None:
        """None for a kind without credentials."""
        return None

    def unreachable(self) -> Refusal:
        """A destination whose server (or folder) is not there."""
        raise NotImplementedError


class Interrupt:
    """A progress callback that raises once ``after`` bytes were reported,
    as the engine's does when the lease is lost or the worker is stopping."""

    class LeaseLost(Exception):
        pass

    def __init__(self, after: int):
        self.after, self.total = after, 0

    def __call__(self, count: int) -> None:
        self.total += count
        if self.total >= self.after:
            raise self.LeaseLost("lease lost")


class Saved:
    """A ResumePoint whose saves and notes are kept, as the engine keeps them on the row."""

    def __init__(self) -> None:
        self.saves: list[dict] = []
        self.notes: list[str] = []
        self.point = ResumePoint(save=self.saves.append, note=self.notes.append)


def mark_known_bug(harness: Harness, request: pytest.FixtureRequest) -> None:
    name = request.node.originalname  # type: ignore[attr-defined]
    if bug := harness.known_bugs.get(name):
        request.applymarker(pytest.mark.xfail(reason=f"BUG ({harness.kind}): {bug}", strict=True))


def deliver(dest: Destination, local: LocalFile, remote: str) -> Progress:
    progress = Progress()
    dest.upload(local, remote, progress)
    assert dest.verify(local, remote) is True
    return progress


class DestinationContract:
    """The tests; a module subclasses this with a ``harness`` fixture."""

    # -- the registry --------------------------------------------------------------
    def test_the_registry_gives_the_class_of_the_kind(self, harness: Harness):
        cls = destination_class(harness.kind)
        assert cls.kind == harness.kind and cls.__name__ == harness.class_name
        assert isinstance(harness.make(), cls)

    # -- test connection ------------------------------------------------------------
    def test_check_writes_and_removes_a_probe(self, harness: Harness):
        with harness.make() as dest:
            message = dest.check()
        assert harness.check_words in message
        assert harness.listing("") == []
        assert harness.leftovers() == []

    def test_wrong_credentials_are_refused_for_good_without_showing_them(
        self, harness: Harness, tmp_path: Path
    ):
        refusal = harness.bad_credentials()
        if refusal is None:  # e.g. a local folder: nothing secret to get wrong
            assert destination_class(harness.kind).form_class.secret_fields == ()
            assert harness.secrets() == []
            return
        local = random_file(tmp_path / "a.txt", 10)
        dest = harness.make(refusal.config)
        for attempt in (lambda: dest.check(), lambda: dest.upload(local, "a.txt", Progress())):
            with pytest.raises(TransferError) as caught:
                with dest:
                    attempt()
            refusal.assert_matches(caught.value)
            for text in (caught.value.message, str(caught.value), repr(caught.value), repr(dest),
                         str(dest), dest.describe()):  # fmt: skip
                assert refusal.secret not in text
        assert harness.listing("") == []

    def test_an_unreachable_server_is_refused_with_the_reason(self, harness: Harness):
        refusal = harness.unreachable()
        dest = harness.make(refusal.config)
        with pytest.raises(TransferError) as caught:
            with dest:
                dest.check()
        refusal.assert_matches(caught.value)

    def test_without_the_allowlist_the_loopback_server_is_refused(self, harness: Harness, settings):
        settings.OUTBOUND_ALLOWED_NETWORKS = []
        if not harness.network:  # a folder has no address: the guard has no say
            with harness.make() as dest:
                assert harness.check_words in dest.check()
            return
        with pytest.raises(TransferError) as refused:
            with harness.make() as dest:
                dest.check()
        assert refused.value.permanent
        assert refused.value.message.startswith(LOOPBACK_REFUSED)
        assert harness.listing("") == []

    def test_the_guard_also_refuses_a_destination_opened_before(self, harness: Harness, settings):
        """Past the early check (as after a DNS change), the connections the
        kind makes meet the guard and the error is permanent, not retried."""
        dest = harness.make()
        dest.open()
        try:
            settings.OUTBOUND_ALLOWED_NETWORKS = []
            if not harness.network:  # a folder has no address: the guard has no say
                assert harness.check_words in dest.check()
                return
            with pytest.raises(TransferError) as refused:
                if harness.keeps_connection:
                    # One session per delivery, vetted when it was made: the next
                    # session (the next run) is what meets the guard.
                    dest.close()
                    dest.open()
                else:  # a connection per request: the very next request is refused
                    dest.check()
        finally:
            dest.close()
        assert refused.value.permanent
        assert refused.value.message.startswith(LOOPBACK_REFUSED)

    def test_repr_and_describe_never_show_a_secret(self, harness: Harness):
        dest = harness.make()
        assert dest.describe() == harness.description()
        for secret in harness.secrets():
            for text in (repr(dest), str(dest), dest.describe(), dest.final_path("r/c/a.mp4"),
                         str(dest.webhook_destination())):  # fmt: skip
                assert secret not in text

    # -- uploading ------------------------------------------------------------------
    def test_it_uploads_to_root_room_conf_name_with_progress_and_verifies(
        self, harness: Harness, tmp_path: Path
    ):
        local = random_file(tmp_path / "src" / "transcoded.mp4", 3 * harness.unit + 17)
        with harness.make() as dest:
            progress = deliver(dest, local, "room1/42/transcoded.mp4")
            assert dest.final_path("room1/42/transcoded.mp4") == harness.final_path(
                "room1/42/transcoded.mp4"
            )
        assert progress.total == local.size and progress.calls >= 1
        assert harness.read("room1/42/transcoded.mp4") == local.path.read_bytes()
        assert harness.listing("") == ["room1"]
        assert harness.listing("room1") == ["42"]
        assert harness.listing("room1/42") == ["transcoded.mp4"]  # no temporary name left
        assert harness.leftovers() == []

    def test_an_empty_file_is_delivered(self, harness: Harness, tmp_path: Path):
        local = random_file(tmp_path / "chat.json", 0)
        with harness.make() as dest:
            deliver(dest, local, "r/1/chat.json")
        assert harness.read("r/1/chat.json") == b""

    def test_uploading_again_replaces_the_file(self, harness: Harness, tmp_path: Path):
        first = random_file(tmp_path / "a.bin", 1000)
        second = random_file(tmp_path / "b.bin", 2000)
        with harness.make() as dest:
            assert deliver(dest, first, "r/c/file.bin").total == first.size
            assert deliver(dest, second, "r/c/file.bin").total == second.size
            assert dest.verify(first, "r/c/file.bin") is False
        assert harness.read("r/c/file.bin") == second.path.read_bytes()
        assert harness.listing("r/c") == ["file.bin"]

    def test_verify_is_false_when_missing_or_of_another_size_and_checks_content_where_it_can(
        self, harness: Harness, tmp_path: Path
    ):
        local = random_file(tmp_path / "chat.txt", 5000)
        with harness.make() as dest:
            assert dest.verify(local, "r/c/chat.txt") is False
            dest.upload(local, "r/c/chat.txt", Progress())
            assert dest.verify(local, "r/c/chat.txt") is True
            assert dest.verify(random_file(tmp_path / "other.txt", 5001), "r/c/chat.txt") is False
            harness.tamper("r/c/chat.txt")
            if harness.verifies == "checksum":
                assert dest.verify(local, "r/c/chat.txt") is False
            else:  # the service gives no checksum: verify compares sizes (documented)
                assert harness.verifies == "size"
                assert dest.verify(local, "r/c/chat.txt") is True
            assert dest.verify(local, "r/missing/chat.txt") is False
        assert harness.listing("r") == ["c"]  # verify never creates folders

    def test_hostile_file_names_land_inside_the_root_under_their_cleaned_name(
        self, harness: Harness, tmp_path: Path
    ):
        from recordings.actions.sessions import clean_file_name

        before = harness.everything()
        names = [clean_file_name(raw, "individual") for raw in HOSTILE_NAMES]
        assert len(set(names)) == len(names)
        with harness.make() as dest:
            for i, name in enumerate(names):
                local = random_file(tmp_path / "src" / f"{i}.bin", 100 + i)
                deliver(dest, local, f"room1/42/{name}")
                assert harness.read(f"room1/42/{name}") == local.path.read_bytes()
        assert sorted(harness.listing("room1/42")) == sorted(names)
        assert harness.listing("") == ["room1"]
        new = harness.everything() - before
        assert len(new) == len(names)  # nothing written beside the root

    def test_a_path_that_climbs_out_of_the_root_is_refused(
        self, harness: Harness, tmp_path: Path, request: pytest.FixtureRequest
    ):
        """Ingest never makes such a path (names are cleaned, rooms and
        conferences are the portal's own ids); a destination still refuses it
        for good, and writes nothing outside its root."""
        mark_known_bug(harness, request)
        before = harness.everything()
        local = random_file(tmp_path / "a.txt", 10)
        with harness.make() as dest:
            token = secrets.token_hex(4)  # an escape lands beside every test's root
            for path in (f"../escape-{token}.txt", f"room/../../escape2-{token}.txt",
                         f"room/..\\..\\escape3-{token}.txt"):  # fmt: skip
                with pytest.raises(TransferError) as refused:
                    dest.upload(local, path, Progress())
                assert refused.value.permanent
        outside = [p for p in harness.everything() - before if not harness.inside(p)]
        assert outside == []

    # -- interrupted uploads ------------------------------------------------------------
    def interrupted(self, harness: Harness, tmp_path: Path) -> tuple[LocalFile, Saved]:
        """Stop an upload of a 6-unit file once 2 units were reported."""
        local = random_file(tmp_path / "big.mp4", 6 * harness.unit + 5)
        saved = Saved()
        with harness.make() as dest, pytest.raises(Interrupt.LeaseLost):
            dest.upload(local, "r/1/big.mp4", Interrupt(2 * harness.unit), saved.point)
        assert harness.read("r/1/big.mp4") is None  # never visible under its name half-sent
        with harness.make() as dest:
            assert dest.verify(local, "r/1/big.mp4") is False
        return local, saved

    def test_an_interrupted_upload_continues_from_its_resume_point_or_says_it_restarts(
        self, harness: Harness, tmp_path: Path
    ):
        local, saved = self.interrupted(harness, tmp_path)
        notes_before = list(saved.notes)
        progress = Progress()
        with harness.make() as dest:  # another run: a new connection, the row's state
            dest.upload(local, "r/1/big.mp4", progress, saved.point)
            assert dest.verify(local, "r/1/big.mp4") is True
        new_notes = saved.notes[len(notes_before) :]
        if harness.resumes == "continues":
            assert saved.saves  # a point worth continuing from was saved at once
            assert progress.total < local.size  # only what was missing went
            assert len(new_notes) == 1, new_notes  # the delivery log says where it continued
        else:
            assert harness.resumes == "restarts"
            assert progress.total == local.size
            expected = [harness.restart_note.format(name="big.mp4")] if harness.restart_note else []
            assert new_notes == expected
        assert harness.read("r/1/big.mp4") == local.path.read_bytes()
        assert harness.listing("r/1") == ["big.mp4"]
        assert harness.leftovers() == []

    def test_discard_removes_what_an_interrupted_upload_left(
        self, harness: Harness, tmp_path: Path, request: pytest.FixtureRequest
    ):
        mark_known_bug(harness, request)
        local, saved = self.interrupted(harness, tmp_path)
        with harness.make() as dest:
            dest.discard("r/1/big.mp4", saved.point.state)
            assert dest.verify(local, "r/1/big.mp4") is False
        assert harness.leftovers() == []
        assert "big.mp4" not in harness.listing("r/1")

    # -- through the engine ---------------------------------------------------------------
    @pytest.mark.django_db(transaction=True)
    def test_a_delivery_writes_every_file_then_the_manifest_under_root_room_conf(
        self, harness: Harness, world: Any, settings: Any
    ):
        import json

        from delivery import engine, scheduling
        from delivery.models import Delivery, DeliveryDestination
        from tests.delivery.engine_support import make_session

        cls = destination_class(harness.kind)
        config = harness.config()
        secret_names = set(cls.form_class.secret_fields) | set(cls.action_only_secrets)
        DeliveryDestination.objects.create(
            project=world.project, name=harness.kind, kind=harness.kind,
            file_types=["chat", "individual"],
            config={k: v for k, v in config.items() if k not in secret_names},
            secrets={k: v for k, v in config.items() if k in secret_names},
        )  # fmt: skip
        session = make_session(world.project, {
            "chat.json": ("chat", b'{"messages": []}\n'),
            "cam-1.webm": ("individual", 300_000),
        })  # fmt: skip
        scheduling.schedule_deliveries_for_session(session.pk)
        delivery = Delivery.objects.get()
        assert engine.run_delivery(delivery.pk) == "delivered"
        folder = f"{session.room.room_id}/{session.conf_num}"
        assert sorted(harness.listing(folder)) == ["cam-1.webm", "chat.json", "manifest.json"]
        stored = {rf.name: rf for rf in session.files.all()}
        for name, rf in stored.items():
            with open(settings.RECORDINGS_ROOT / rf.storage_path, "rb") as fh:
                assert harness.read(f"{folder}/{name}") == fh.read()
        manifest = json.loads(harness.read(f"{folder}/manifest.json") or b"")
        assert sorted(f["name"] for f in manifest["files"]) == sorted(stored)
        assert harness.leftovers() == []
