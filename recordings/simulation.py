"""Sample media of a whole session for ``simulate_session`` and ``fill_demo``:
one real recording per participant (test pattern, tone and name), a chat
transcript and a metadata log of joins and leaves."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import samples

NAMES = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy")


@dataclass(frozen=True)
class SampleFile:
    type: str  # individual | chat | metadata
    path: Path
    participant: str = ""


def participant_names(count: int) -> list[str]:
    if not 1 <= count <= 16:
        raise ValueError("a simulated session has 1 to 16 participants")
    return [
        NAMES[i % len(NAMES)] + (f" {i // len(NAMES) + 1}" if i >= len(NAMES) else "")
        for i in range(count)
    ]


def generate_recordings(
    workdir: Path, names: list[str], seconds: float, *, width: int = 640, height: int = 360
) -> list[SampleFile]:
    """One MP4 per participant, generated in parallel (each is an ffmpeg process)."""

    def make(index: int) -> SampleFile:
        name = names[index]
        path = workdir / f"{name.lower().replace(' ', '-')}.mp4"
        samples.generate_participant_media(
            path, name=name, seconds=seconds, index=index, width=width, height=height
        )
        return SampleFile("individual", path, name)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(make, range(len(names))))


def generate_logs(
    workdir: Path, names: list[str], seconds: float, room_id: str, conf_num: str,
    started_at: datetime | None = None,
) -> list[SampleFile]:  # fmt: skip
    started_at = started_at or datetime.now(UTC)
    chat, metadata = workdir / "chat.json", workdir / "metadata.json"
    samples.generate_chat_transcript(chat, names, seconds, started_at=started_at)
    samples.generate_metadata_log(metadata, names, seconds, room_id, conf_num, started_at=started_at)
    return [SampleFile("chat", chat), SampleFile("metadata", metadata)]
