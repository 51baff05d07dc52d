"""Big files over two extra FTP sessions at once ("lanes").

Why: FTP servers run one process per session (vsftpd, ProFTPD, Pure-FTPd),
so one session's upload is as fast as one server process (and our one
sending thread) can go; two sessions let the server use two cores. This is
the FTP side of what ``delivery/destinations/ssh/lanes.py`` does for SSH.

How a file goes (``send``):

- The destination's own session stays the control session: folders, the
  probe below, SIZE, the rename and verify happen there as before.
- Each lane is a new session (``FTPDestination._session``: the same egress
  guard, TLS checks and pinned certificate, login) with its own passive data
  connection, sending one contiguous half of the file (cut on a whole MiB)
  into the temporary file with ``REST <start>`` + ``STOR``.
- A STOR at position 0 truncates the file: pyftpdlib opens it with mode 'w'
  unless REST set a non-zero position, then 'r+' (pyftpdlib 2.2,
  handlers/ftp/control.py, ``ftp_STOR``); vsftpd truncates when the offset is
  0 (postlogin.c, ``handle_upload_common``). So the lane starting at byte 0
  has its 1xx reply (the file is open and truncated) before any other lane
  sends its STOR.
- The second lane starts writing in the middle of a file that is still
  empty. vsftpd lets REST seek past the end ("allows seek past end of file");
  pyftpdlib and ProFTPD refuse it (554, "REST position > file size") and
  Pure-FTPd silently writes at the end instead. The destination asks the
  server with a probe file first (``writes_past_the_end``).
- vsftpd's default ``lock_upload_files=YES`` holds a write lock on the file
  for a whole upload: the second lane's STOR gets no reply until the first
  ends. So servers that lock a file while it is written (vsftpd's default)
  get one session after a 5-second try: a later lane's STOR reply is waited
  for ``LOCK_WAIT`` only, not the session timeout (60 s were lost per big
  file before; bench/README.md, "FTP and FTPS against vsftpd").
- Every lane is logged in and has its STOR accepted before any byte is sent.
  If one cannot (the probe fails, a per-user session limit answers 421 or 530,
  a STOR is refused or not answered in ``LOCK_WAIT``), nothing went over the
  lanes: their sockets are closed, the file goes over the one session as
  before and lanes are not tried for that server for ``COOL_OFF``.

Measured (bench/delivery.py, 1 GiB over loopback on 2 CPUs, pyftpdlib with
one process per session, 30 Nov, medians of 3): on a quiet machine FTPS
1.46x rclone's single session (323-345 against 211-229 MB/s), FTP 1.04x
(635-719 against 613-668 MB/s); 0.83-1.13x in three runs beside another
benchmark. rclone's FTPS leaves ~30 % of the CPUs idle, which the second
server process uses; plain FTP leaves little (vmstat), and the two server
processes writing one file queue on its inode lock (ext4 buffered writes;
perf: as many samples in rwsem_spin_on_owner as in the page-cache copy).
Lanes pay most where one server process or one TCP stream is the limit: TLS,
a distant server. Against vsftpd 3.0.3 (``lock_upload_files=NO``), same
bench, three runs beside another engineer's tests: FTP 1.34, 1.35, 1.91x and
FTPS 1.42, 1.58, 1.44x rclone (FTPS 186-207 against 118-146 MB/s).

Resume: the state saved in the file's ResumePoint is ``{"temp", "lanes":
[[start, end], ...], "sent": [n, ...]}`` where ``sent[i]`` is the position
up to which lane i handed bytes to its data socket, saved every
``SAVE_EVERY`` bytes of a lane or ``SAVE_SECONDS``. The next run reads the
server's copy around each ``sent`` (``window``) and continues each lane at
the first byte that differs from ours: what a killed worker's lanes had sent
is kept, far under one 16 MiB part per file is sent again
(tests/reliability/test_resume.py). A lane whose window the server lost even
the start of starts over; lane 1 restarting at byte 0 would truncate the
file, so then every lane does.
"""

from __future__ import annotations

import ftplib
import io
import os
import posixpath
import queue
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base import CoolOff, LocalFile, ProgressCallback, ResumePoint, TransferError, probe_name

if TYPE_CHECKING:
    from .destination import FTPDestination

MiB = 1024 * 1024
# Files this big or bigger go over lanes: below it, two more logins and the
# probe cost more than they gain on a distant server (as for the SSH lanes).
MIN_SIZE = 64 * MiB
LANES = 2
BLOCK = MiB  # bytes handed to a data socket per call (and per progress report)
# The resume state is written when a lane has sent this much since the last
# time (as often as SFTP's checkpoints), or after SAVE_SECONDS; a lane never
# gets more than LEAD past its saved position, and the next run reads back
# that far (WINDOW_AHEAD), so a killed worker's lanes lose nothing they sent.
SAVE_EVERY = 4 * MiB
SAVE_SECONDS = 2.0
LEAD = 8 * MiB
WINDOW_AHEAD = LEAD
# What a server may have lost of what it was handed (a crash): a window of
# 16 MiB in all per lane.
WINDOW_BACK = 8 * MiB
# A server where lanes could not start is not asked again for this long.
COOL_OFF = 600.0
# How long a lane's STOR reply is waited for while an earlier lane's STOR is
# open (PASV and REST replies too): a server that locks a file while it is
# written (vsftpd's lock_upload_files, on by default) answers only once the
# earlier upload ends. A distant server's round trip is well under it.
LOCK_WAIT = 5.0

Range = tuple[int, int]  # [start, end) of the file

_cooling = CoolOff()


class LanesUnavailable(Exception):
    """Lanes could not start; nothing was sent over them. The message is ours."""


def cooling(key: str) -> bool:
    return _cooling.active(key)


def cool_off(key: str) -> None:
    _cooling.start(key, COOL_OFF)


def split(size: int) -> list[Range]:
    """The file cut into LANES contiguous ranges, on whole MiBs."""
    per = -(-size // LANES)
    per += -per % MiB
    cuts = [min(size, i * per) for i in range(LANES)] + [size]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def lanes_state(temp: str, ranges: Sequence[Range], sent: Sequence[int]) -> dict[str, Any]:
    """The resume state: ``sent[i]`` is the position in the file up to which
    lane i has handed bytes to its data socket."""
    return {"temp": temp, "lanes": [list(r) for r in ranges], "sent": list(sent)}


def saved_positions(saved: dict[str, Any], temp: str, ranges: Sequence[Range]) -> list[int] | None:
    """``sent`` of a state that a lanes upload of this very file to ``temp``
    saved, or None (another file, another split, not ours)."""
    sent = saved.get("sent")
    if saved.get("temp") != temp or saved.get("lanes") != [list(r) for r in ranges]:
        return None
    if not isinstance(sent, list) or len(sent) != len(ranges):
        return None
    if not all(type(n) is int and start <= n <= end for n, (start, end) in zip(sent, ranges, strict=True)):
        return None
    return sent


def window(start: int, end: int, sent: int) -> Range:
    """The part of a lane's range to read back from the server after a cut:
    what the server may have lost before ``sent``, and what the lane may have
    sent after it was saved."""
    return max(start, sent - WINDOW_BACK), min(end, sent + WINDOW_AHEAD)


def common_prefix(a: bytes, b: bytes) -> int:
    """How many leading bytes ``a`` and ``b`` share (bisecting on slices: a
    window is megabytes, a loop over its bytes would take seconds)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def writes_past_the_end(dest: FTPDestination, folder: str) -> bool:
    """Whether a STOR after a REST past the end of a file writes there, as a
    lane starting mid-file needs; asked on the control session with a probe
    file of two bytes, the first a hole."""
    ftp = dest._conn()
    probe = posixpath.join(folder, probe_name())
    try:
        with dest._errors(f"writing a probe file in folder {folder}"):
            ftp.storbinary(f"STOR {probe}", io.BytesIO(b""))  # refused: the upload's own error
            try:
                ftp.storbinary(f"STOR {probe}", io.BytesIO(b"x"), rest=1)
            except (ftplib.error_perm, ftplib.error_temp):
                return False
        return dest._size(probe) == 2
    finally:
        dest._delete_quietly(probe)


class _Enough(Exception):
    """Raised from a download's callback once it has what it needs."""


def read_back(dest: FTPDestination, path: str, at: int, length: int) -> bytes:
    """Up to ``length`` bytes of ``path`` on the server from byte ``at``
    (fewer where it ends). On a session of its own: RETR sends the rest of
    the file, and a session whose download was cut short is closed."""
    got = bytearray()

    def collect(block: bytes) -> None:
        got.extend(block)
        if len(got) >= length:
            raise _Enough

    ftp, _fingerprint = dest._session()
    try:
        with dest._errors(f"reading back part of {path}", drop=False):
            try:
                ftp.retrbinary(f"RETR {path}", collect, blocksize=BLOCK, rest=at)
            except _Enough:
                pass
            except (ftplib.error_perm, ftplib.error_temp):
                pass  # no such file, or it ends before ``at``: nothing (more) there
    finally:
        ftp.close()
    return bytes(got[:length])


def resume_positions(
    dest: FTPDestination, local: LocalFile, temp: str, saved: dict[str, Any], ranges: Sequence[Range]
) -> tuple[list[int], str]:
    """Where each lane goes on, and the note that says so: its start for a
    new upload, else the first byte of its window where the server's copy
    differs from ours."""
    starts = [start for start, _end in ranges]
    sent = saved_positions(saved, temp, ranges)
    if sent is None:
        return starts, ""
    positions, over = [], []
    with open(local.path, "rb") as fh:
        for number, ((start, end), mark) in enumerate(zip(ranges, sent, strict=True), 1):
            at, until = window(start, end, mark)
            theirs = read_back(dest, temp, at, until - at)
            fh.seek(at)
            kept = common_prefix(fh.read(len(theirs)), theirs)
            if not kept and at > start:  # the server kept less than the window
                over.append(number)
                positions.append(start)
            else:
                positions.append(at + kept)
    name = posixpath.basename(temp)
    if positions[0] == 0 and positions != starts:
        # Lane 1 would truncate the file (STOR at 0): every lane starts over.
        return starts, f"the server kept too little of {name}: sending it again from byte 0"
    there = sum(p - start for p, (start, _end) in zip(positions, ranges, strict=True))
    message = f"continuing {name} over {len(ranges)} sessions: {there} of {local.size} bytes are already there"
    if over:
        parts = " and ".join(str(n) for n in over)
        message += f"; the server kept less of part {parts} than was sent: that part starts over"
    return positions, message


@dataclass
class Lane:
    number: int  # 1, 2: for messages
    start: int
    end: int
    position: int  # the next byte to hand to the data socket
    ftp: ftplib.FTP | None = None
    conn: socket.socket | None = None


# What the lanes' threads tell the calling thread: bytes handed to the data
# socket, the exception that stopped the lane, None once the lane ended.
Events = queue.SimpleQueue[tuple[Lane, int | BaseException | None]]


def send(dest: FTPDestination, local: LocalFile, temp: str, point: ResumePoint, progress: ProgressCallback) -> None:
    """Upload ``local`` into ``temp`` over lanes, continuing what ``point``
    saved. Raises LanesUnavailable if the lanes could not start (nothing was
    sent over them), a TransferError if one failed on the way (the next run
    continues from the saved state)."""
    ranges = split(local.size)
    positions, note = resume_positions(dest, local, temp, point.state, ranges)
    lanes = [
        Lane(number, start, end, position)
        for number, ((start, end), position) in enumerate(zip(ranges, positions, strict=True), 1)
        if position < end
    ]
    try:
        if lanes:
            _start(dest, lanes, temp)
        point.save(lanes_state(temp, ranges, positions))  # what discard() removes, before any byte
        if note:
            point.note(note)
        if lanes:
            _Pump(dest, local, temp, lanes).run(ranges, positions, point, progress)
    finally:
        _close(lanes)


def _start(dest: FTPDestination, lanes: list[Lane], temp: str) -> None:
    """Log every lane in (at once, while the control session tries the probe)
    and have each lane's STOR accepted, the one at byte 0 first."""
    with ThreadPoolExecutor(len(lanes), thread_name_prefix="ftp-lane-login") as pool:
        logins = [pool.submit(dest._session) for _lane in lanes]
        failed = ""
        try:
            past_the_end = writes_past_the_end(dest, posixpath.dirname(temp))
        finally:
            for lane, login in zip(lanes, logins, strict=True):
                try:
                    lane.ftp, _fingerprint = login.result()
                except Exception as exc:  # noqa: BLE001 - its message is ours (TransferError), else its type
                    failed = getattr(exc, "message", type(exc).__name__)
    if failed:
        raise LanesUnavailable(f"a second session could not start: {failed}")
    if not past_the_end:
        raise LanesUnavailable("the server does not write at a REST position past the end of a file")
    for later, lane in enumerate(sorted(lanes, key=lambda lane: lane.position)):  # the STOR at byte 0 first
        assert lane.ftp is not None and lane.ftp.sock is not None
        if later:
            lane.ftp.sock.settimeout(LOCK_WAIT)
        try:
            lane.conn, _size = lane.ftp.ntransfercmd(f"STOR {temp}", lane.position or None)
            lane.ftp.sock.settimeout(lane.ftp.timeout)
        except (ftplib.Error, OSError, EOFError) as exc:
            if later and isinstance(exc, TimeoutError):
                # Nothing was sent over any lane: the caller closes them all.
                raise LanesUnavailable(
                    "the server seems to lock a file while it is written (vsftpd's lock_upload_files): "
                    f"the STOR of part {lane.number} had no reply in {LOCK_WAIT:g} s"
                ) from None
            # The reply code only: the server's words are not shown.
            code = str(exc)[:3] if isinstance(exc, ftplib.Error) else type(exc).__name__
            raise LanesUnavailable(f"the server refused the STOR of part {lane.number} ({code})") from None


class _Pump:
    """Every lane's bytes sent from its own thread; the calling thread
    reports progress, saves the resume point now and then, and on the first
    failure stops every lane. A lane waits while it is more than ``LEAD``
    bytes past its last saved position: however slowly the row is written,
    the next run's window reaches where the lane got."""

    def __init__(self, dest: FTPDestination, local: LocalFile, temp: str, lanes: list[Lane]):
        self.dest, self.local, self.temp, self.lanes = dest, local, temp, lanes
        self.events: Events = queue.SimpleQueue()
        self.stop = threading.Event()
        self.room = threading.Condition()
        self.allowed = {lane.number: lane.position + LEAD for lane in lanes}

    def run(self, ranges: Sequence[Range], positions: list[int], point: ResumePoint, progress: ProgressCallback) -> None:
        threads = [
            threading.Thread(target=self._lane, args=(lane,), name=f"ftp-lane-{lane.number}", daemon=True)
            for lane in self.lanes
        ]
        for thread in threads:
            thread.start()
        sent, saved, saved_at = list(positions), list(positions), time.monotonic()
        try:
            running = len(threads)
            while running:
                lane, what = self.events.get()
                if what is None:
                    running -= 1
                    continue
                if isinstance(what, BaseException):
                    raise what
                sent[lane.number - 1] += what
                progress(what)
                ahead = max(n - s for n, s in zip(sent, saved, strict=True))
                if ahead >= SAVE_EVERY or time.monotonic() - saved_at >= SAVE_SECONDS:
                    point.save(lanes_state(self.temp, ranges, sent))
                    saved, saved_at = list(sent), time.monotonic()
                    with self.room:
                        self.allowed = {n: at + LEAD for n, at in enumerate(saved, 1)}
                        self.room.notify_all()
        finally:
            with self.room:
                self.stop.set()
                self.room.notify_all()
            for lane in self.lanes:  # wakes a lane blocked on its full socket or on its reply
                for sock in (lane.conn, lane.ftp.sock if lane.ftp else None):
                    if sock is not None:
                        try:
                            socket.socket.shutdown(sock, socket.SHUT_RDWR)
                        except OSError:
                            pass
            for thread in threads:
                thread.join()

    def _lane(self, lane: Lane) -> None:
        try:
            with self.dest._errors(f"uploading {self.temp}", drop=False):
                self._send(lane)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            self.events.put((lane, exc))
        finally:
            self.events.put((lane, None))

    def _room_for(self, number: int, upto: int) -> bool:
        """Wait until lane ``number`` may send up to byte ``upto``; False: stop."""
        with self.room:
            self.room.wait_for(lambda: self.stop.is_set() or upto <= self.allowed[number])
            return not self.stop.is_set()

    def _send(self, lane: Lane) -> None:
        conn, ftp = lane.conn, lane.ftp
        assert conn is not None and ftp is not None
        position = lane.position
        with open(self.local.path, "rb") as fh:
            while position < lane.end:
                count = min(BLOCK, lane.end - position)
                if not self._room_for(lane.number, position + count):
                    return
                if isinstance(conn, ssl.SSLSocket):
                    data = os.pread(fh.fileno(), count, position)
                    conn.sendall(data)
                    count = len(data)
                else:
                    # The kernel copies from the page cache: no Python buffer per block.
                    count = conn.sendfile(fh, position, count)
                if not count:
                    raise TransferError(f"{self.local.path} shrank while being uploaded")
                position += count
                self.events.put((lane, count))
        if isinstance(conn, ssl.SSLSocket):
            # A TLS shutdown before the close, as ftplib's storbinary does: pyftpdlib
            # truncates uploads whose client closes without one (giampaolo/pyftpdlib#602).
            conn.unwrap()
        conn.close()
        lane.conn = None
        ftp.voidresp()  # 226: the server has the lane's bytes


def _close(lanes: list[Lane]) -> None:
    """Close every lane's sockets, without QUIT (which could wait for a
    server that is gone): the server ends their sessions."""
    for lane in lanes:
        if lane.conn is not None:
            lane.conn.close()
            lane.conn = None
        if lane.ftp is not None:
            lane.ftp.close()
            lane.ftp = None
