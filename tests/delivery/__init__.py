"""Tests of delivery: one module per destination kind, next to its real server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from delivery.destinations.base import LocalFile

MB = 1024 * 1024


def random_file(path: Path, size: int) -> LocalFile:
    """Write ``size`` random bytes to ``path`` in bounded chunks and describe it."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, MB))
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return LocalFile(path=path, size=size, sha256=digest.hexdigest())


class Progress:
    """A progress callback that adds up what it is told."""

    def __init__(self) -> None:
        self.total = 0
        self.calls = 0

    def __call__(self, count: int) -> None:
        self.total += count
        self.calls += 1
