"""Block blobs sent so that a later run can continue them (see azure.py).

Each block's id is made from the file's SHA-256 (known from ingest), the
block size and the block's number, so a run that finds the blob's
uncommitted blocks knows which of them are this file's (an id also binds the
content, as recordings never change) and stages only the missing ones before
committing the list.

The blob's Content-MD5 (what ``verify`` compares) is computed by a thread of
its own while the blocks go out, not before the first one: 1.6 s of CPU for
1 GiB that Azurite's one thread (bench/README.md) would otherwise wait for.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..base import LocalFile, ProgressCallback, ResumePoint
from ..parts import Part, concurrency_for, send_parts, split


def block_id(local: LocalFile, block_size: int, number: int) -> str:
    # Every id of one blob must have the same length: fixed-width fields.
    return f"portal-{local.sha256_hex()[:16]}-{block_size:010x}-{number:06d}"


def upload_blocks(
    blob: Any,
    local: LocalFile,
    *,
    block_size: int,
    most_at_once: int,
    progress: ProgressCallback,
    resume: ResumePoint,
) -> None:
    from azure.storage.blob import BlobBlock, ContentSettings

    background = ThreadPoolExecutor(1, thread_name_prefix="portal-md5")
    md5 = background.submit(lambda: local.md5)
    background.shutdown(wait=False)  # its one job still runs; a failure below does not wait for it
    parts = split(local.size, block_size)
    ids = {part.number: block_id(local, block_size, part.number) for part in parts}
    state = {"blob": blob.blob_name, "block_size": block_size}
    if resume.state != state:
        resume.save(state)  # before the first block: what discard() needs
    staged = uncommitted_blocks(blob)
    todo = [part for part in parts if staged.get(ids[part.number]) != part.size]
    if len(todo) < len(parts):
        resume.note(
            f"continuing the blob: {len(parts) - len(todo)} of {len(parts)} blocks are "
            f"already staged, sending {len(todo)}"
        )

    def send(part: Part) -> None:
        blob.stage_block(ids[part.number], part.read(local.path), length=part.size)

    send_parts(todo, send, progress, concurrency_for(block_size, most_at_once))
    blob.commit_block_list(
        [BlobBlock(block_id=ids[part.number]) for part in parts],
        content_settings=ContentSettings(content_md5=bytearray(bytes.fromhex(md5.result()))),
    )


def uncommitted_blocks(blob: Any) -> dict[str, int]:
    """id -> size of the blob's staged, uncommitted blocks (none if there is no blob)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        _committed, uncommitted = blob.get_block_list("uncommitted")
    except ResourceNotFoundError:
        return {}
    return {block.id: block.size for block in uncommitted}


def discard_blocks(blob: Any) -> None:
    """Drop the blob's uncommitted blocks when nothing was ever committed
    under its name (a committed blob, e.g. an earlier delivery, is kept: its
    staged blocks go at the next commit or after Azure's one-week expiry)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        blob.get_blob_properties()
        return
    except ResourceNotFoundError:
        pass
    if not uncommitted_blocks(blob):
        return
    try:
        blob.delete_blob()  # what Azurite accepts for a blob of staged blocks only
    except ResourceNotFoundError:
        # Azure itself: commit an empty list (which drops the staged blocks), then delete.
        blob.commit_block_list([])
        blob.delete_blob()
