"""A file sent as numbered parts, a few at once, for kinds that assemble the
parts at the end (S3 multipart uploads, Azure block blobs).

A part only counts once the server acknowledged it, so what a SIGKILL can
cost is the parts in flight at that moment. The part size and the number of
parts sent at once are chosen so that at most ``IN_FLIGHT`` bytes of one file
are unacknowledged: a killed worker's successor sends at most that again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .base import ProgressCallback

MB = 1024 * 1024
IN_FLIGHT = 16 * MB
T = TypeVar("T")


@dataclass(frozen=True)
class Part:
    number: int  # from 1, as S3 counts
    offset: int
    size: int

    def read(self, path: Path) -> bytes:
        with open(path, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.size)


def split(size: int, part_size: int) -> list[Part]:
    """The parts of a file of ``size`` bytes (the last one may be shorter)."""
    count = max(1, -(-size // part_size))
    return [
        Part(number + 1, number * part_size, min(part_size, size - number * part_size))
        for number in range(count)
    ]


def concurrency_for(part_size: int, most: int) -> int:
    """How many parts may be in flight so that no more than IN_FLIGHT bytes are."""
    return max(1, min(most, IN_FLIGHT // max(part_size, 1)))


def send_parts(
    parts: list[Part],
    send: Callable[[Part], T],
    progress: ProgressCallback,
    concurrency: int,
) -> dict[int, T]:
    """``send`` every part, ``concurrency`` at a time; ``progress`` is told a
    part's size once it is acknowledged. The first failure stops the parts
    not yet started and is raised once the running ones ended."""
    stop = threading.Event()
    results: dict[int, T] = {}

    def one(part: Part) -> None:
        if stop.is_set():
            return
        try:
            results[part.number] = send(part)
            progress(part.size)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="part") as pool:
        futures = [pool.submit(one, part) for part in parts]
    for future in futures:
        error: Any = future.exception()
        if error is not None:
            raise error
    return results
