"""The SFTP data path: one pipelined stream for small files, several SFTP
channels of the one connection for big ones, both able to start at an offset
(resume) and to report how far the temp file is known to be written.

"Known to be written" means acknowledged by the server: writes are pipelined,
so a byte handed to paramiko may still be in a socket buffer when the
connection is cut. ``checkpoint(offset)`` is called with the end of the
contiguous acknowledged prefix, never beyond it (bench/README.md, SFTP resume).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

import paramiko
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

from ..base import LocalFile, ProgressCallback, TransferError
from ..ssh.connection import CHANNEL_TIMEOUT, MAX_PACKET_SIZE, WINDOW_SIZE

MiB = 1024 * 1024
READ_CHUNK = MiB
# Blocks the channels take in turn; also the resume granularity: after a cut at
# most AHEAD bytes past the acknowledged prefix are sent again (4 x 4 MiB = one
# 16 MiB part).
STREAMS = 4
STREAM_BLOCK = 4 * MiB
AHEAD = STREAMS * STREAM_BLOCK
PARALLEL_MIN = 32 * MiB
# A single stream waits for its acknowledgements (and saves the offset) this often.
CHECKPOINT = 4 * MiB

# Full SSH packets per SFTP write where the server allows big writes (OpenSSH: 255 KiB).
REQUEST_PACKETS = 7
MIN_WRITE_LIMIT = 32768

Checkpoint = Callable[[int], None]


def fit_requests(client: paramiko.SFTPClient, dst: paramiko.SFTPFile, packets: int = 1) -> None:
    """Size writes to fill whole SSH packets: paramiko's 32 KiB writes are 29 bytes
    over OpenSSH's 32 KiB channel packets and each went as two packets (20 % more
    client CPU, a third less speed on one stream). With ``packets`` > 1 (servers
    that announce a larger write limit, see ``server_write_limit``) one request
    spans several full packets: fewer requests, acknowledgements and Python
    calls per byte on both sides."""
    channel = client.get_channel()
    if channel is None:
        return
    # channel data header (paramiko keeps 64 bytes free) + SFTP WRITE header
    payload = channel.out_max_packet_size - 64
    size = packets * payload - (25 + len(dst.handle))
    limit = paramiko.SFTPFile.MAX_REQUEST_SIZE if packets <= 1 else size
    dst.MAX_REQUEST_SIZE = max(4096, min(limit, size))


def server_write_limit(client: paramiko.SFTPClient) -> int:
    """The largest WRITE the server accepts, from OpenSSH's limits@openssh.com
    extension; 32768 (what every SFTP server must take) when it has none."""
    try:
        kind, msg = client._request(CMD_EXTENDED, "limits@openssh.com")  # noqa: SLF001
    except (OSError, paramiko.SSHException, EOFError):
        return MIN_WRITE_LIMIT
    if kind != CMD_EXTENDED_REPLY:
        return MIN_WRITE_LIMIT
    _max_packet, _max_read, max_write = msg.get_int64(), msg.get_int64(), msg.get_int64()
    return max(MIN_WRITE_LIMIT, max_write)


def packets_per_request(client: paramiko.SFTPClient, wanted: int) -> int:
    """How many full channel packets one write may span on this server (<= wanted)."""
    channel = client.get_channel()
    if wanted <= 1 or channel is None:
        return 1
    payload = channel.out_max_packet_size - 64
    limit = server_write_limit(client)
    return max(1, min(wanted, (limit + 64) // payload))


def wait_for_acks(client: paramiko.SFTPClient, dst: paramiko.SFTPFile) -> None:
    """Collect the server's answer to every write sent so far on ``dst``; raises
    the first error. paramiko only does this on close() or when its queue of
    pipelined requests is long; this is the same loop as its SFTPFile._write,
    so the file stays usable afterwards."""
    dst.flush()
    pending = dst._reqs  # noqa: SLF001 - paramiko keeps the pipelined request ids here
    while pending:
        client._read_response(pending.popleft())  # noqa: SLF001 - raises on an error status


def put_stream(
    client: paramiko.SFTPClient,
    local: LocalFile,
    tmp: str,
    offset: int,
    progress: ProgressCallback,
    checkpoint: Checkpoint,
    packets: int = 1,
) -> None:
    """One pipelined stream from ``offset`` to the end (the temp file exists
    when ``offset`` > 0 and is written in place, not truncated)."""
    with open(local.path, "rb") as src, client.open(tmp, "r+" if offset else "wb") as dst:
        # Pipelined: writes are not waited for one by one; close() collects
        # every acknowledgement and raises the first error.
        dst.set_pipelined(True)
        fit_requests(client, dst, packets)
        src.seek(offset)
        dst.seek(offset)
        position = acknowledged = offset
        while chunk := src.read(READ_CHUNK):
            dst.write(chunk)
            position += len(chunk)
            progress(len(chunk))
            if position - acknowledged >= CHECKPOINT and position < local.size:
                wait_for_acks(client, dst)
                acknowledged = position
                checkpoint(acknowledged)


class ParallelPut:
    """Write one file's STREAM_BLOCK blocks from ``start`` over several SFTP
    channels of the destination's transport. Workers take the next block as
    they free up and wait for its acknowledgements before reporting it done;
    the calling thread reports progress and checkpoints (the callbacks may
    raise to stop the upload, e.g. a lost lease)."""

    def __init__(
        self,
        transport: paramiko.Transport,
        main: paramiko.SFTPClient,
        local: LocalFile,
        tmp: str,
        start: int,
        ahead: int = AHEAD,
    ):
        self.transport, self.main, self.local, self.tmp = transport, main, local, tmp
        self.start = self.next_offset = start
        self.lock = threading.Lock()
        self.progressed = threading.Condition(self.lock)
        self.finished: dict[int, int] = {}  # acknowledged blocks beyond the prefix: start -> end
        self.acknowledged = start
        self.ahead = ahead
        self.stop = threading.Event()
        # ("sent", byte count, 0) or ("ack", end of the acknowledged prefix, 0)
        self.events: queue.SimpleQueue[tuple[str, int, int]] = queue.SimpleQueue()
        self.errors: list[BaseException] = []
        self.clients: list[paramiko.SFTPClient] = []
        self.packets = 1

    def run(self, streams: int, progress: ProgressCallback, checkpoint: Checkpoint, packets: int = 1) -> None:
        self.packets = packets
        self.clients = [self.main] + self._extra_clients(streams - 1)
        fd = os.open(self.local.path, os.O_RDONLY)
        workers = [
            threading.Thread(target=self._work, args=(client, fd), daemon=True) for client in self.clients
        ]
        try:
            for worker in workers:
                worker.start()
            while any(w.is_alive() for w in workers) or not self.events.empty():
                try:
                    what, first, second = self.events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if what == "sent":
                    progress(first)
                    continue
                # ("ack", new prefix end, 0): saved even after a channel failed, since
                # the server did confirm it; the loop drains every event before raising.
                if first < self.local.size:
                    checkpoint(first)
        except BaseException:
            self.stop.set()
            raise
        finally:
            self.stop.set()
            for client in self.clients[1:]:
                client.close()  # also wakes a worker waiting for window space
            for worker in workers:
                worker.join()
            os.close(fd)
        if self.errors:
            raise self.errors[0]

    def _extra_clients(self, count: int) -> list[paramiko.SFTPClient]:
        clients = []
        for _ in range(count):
            try:
                client = paramiko.SFTPClient.from_transport(
                    self.transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
                )
            except (paramiko.SSHException, EOFError, OSError):
                break  # e.g. the server's MaxSessions: go on with the channels we have
            if client is None:
                break
            client.get_channel().settimeout(CHANNEL_TIMEOUT)
            clients.append(client)
        return clients

    def _take(self) -> tuple[int, int] | None:
        with self.progressed:
            # No block starts more than AHEAD past the acknowledged prefix: a slow
            # channel holds the others back instead of leaving a hole behind them
            # that a cut would make everyone send again.
            while not self.stop.is_set() and self.acknowledged + self.ahead <= self.next_offset < self.local.size:
                self.progressed.wait(0.2)
            if self.stop.is_set() or self.next_offset >= self.local.size:
                return None
            start = self.next_offset
            self.next_offset = min(self.local.size, start + STREAM_BLOCK)
            return start, self.next_offset

    def _finished(self, start: int, end: int) -> None:
        with self.progressed:
            self.finished[start] = end
            advanced = self.acknowledged
            while advanced in self.finished:
                advanced = self.finished.pop(advanced)
            if advanced != self.acknowledged:
                self.acknowledged = advanced
                self.events.put(("ack", advanced, 0))
                self.progressed.notify_all()

    def _work(self, client: paramiko.SFTPClient, fd: int) -> None:
        try:
            with client.open(self.tmp, "r+") as dst:
                dst.set_pipelined(True)
                fit_requests(client, dst, self.packets)
                while block := self._take():
                    offset, end = block
                    dst.seek(offset)
                    while offset < end and not self.stop.is_set():
                        chunk = os.pread(fd, min(READ_CHUNK, end - offset), offset)
                        if not chunk:
                            raise TransferError(f"{self.local.path} shrank while being uploaded")
                        dst.write(chunk)
                        offset += len(chunk)
                        self.events.put(("sent", len(chunk), 0))
                    if self.stop.is_set():
                        break
                    wait_for_acks(client, dst)
                    self._finished(*block)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            if not self.stop.is_set():
                self.errors.append(exc)
            self.stop.set()
