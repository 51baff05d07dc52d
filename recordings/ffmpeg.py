"""The one way the portal runs ffmpeg (the binary of the ``imageio-ffmpeg``
wheel; the wheel has no ffprobe, so probing is ``ffmpeg -i`` too).

Every file ffmpeg reads is untrusted: a media server's upload may be a
playlist naming another tenant's recording, a 77-byte file claiming 100
hours, or an image of 12000x12000 pixels. So every run here

* opens inputs only through :func:`input_args`: a demuxer allowlist
  (``-format_whitelist``; HLS, DASH, concat, image and every other demuxer
  are refused before they open anything) and ``-protocol_whitelist file``
  (no http, no pipe, no data: URLs, even from inside a container);
* has a wall-clock timeout the caller scales to the length of the media;
* runs under resource limits set in the child before it starts: address
  space (RLIMIT_AS), CPU seconds (RLIMIT_CPU) and the size of any file it
  writes (RLIMIT_FSIZE), so one hostile file cannot take the machine's memory,
  CPUs or disk from every other tenant.

stderr goes to a temporary file and only its end is read, so memory stays
bounded however long ffmpeg runs.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import imageio_ffmpeg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Demuxers a recording may come in (the names ffmpeg gives them): MP4/MOV and
# relatives, Matroska/WebM, Ogg, WAV, MP3 and raw AAC.
MEDIA_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "ogg", "wav", "mp3", "aac")
FORMAT_WHITELIST = ",".join(MEDIA_FORMATS)
# Inputs are local files only: no http, tcp, pipe, data: or subfile, even when
# a container or playlist names one. (Outputs are the portal's own paths.)
PROTOCOL_WHITELIST = "file"

STDERR_TAIL_LINES = 12
STDERR_MAX_BYTES = 16 * 1024 * 1024  # a probe at -loglevel debug prints a few kB
_LOG_PREFIX = re.compile(r"\[[^\]\n]* @ 0x[0-9a-f]+\] ?")  # "[libx264 @ 0x55d0...] "


class MediaError(Exception):
    """ffmpeg could not read or write a file. The message's first line says what
    failed in the portal's words (shown on pages and in the API); the lines after
    it are the last ones ffmpeg printed (for the log)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Limits:
    """What one ffmpeg run may use. ``timeout`` is wall-clock seconds; CPU time
    is allowed for every core during that time."""

    timeout: float
    output_bytes: int
    memory_bytes: int | None = None  # else settings.MEDIA_FFMPEG_MAX_MEMORY_BYTES

    @property
    def cpu_seconds(self) -> int:
        return int(self.timeout * usable_cpus()) + 1


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_memory_bytes() -> int:
    """Address space for one run when MEDIA_FFMPEG_MAX_MEMORY_BYTES is 0. Measured:
    a 16-input 720p composite fails under 1.5 GiB and runs under 2 GiB on 2 CPUs;
    ffmpeg starts threads per CPU (decoders and x264), each with its own stack
    and buffers, so the allowance grows with the CPUs."""
    return 2 * 1024**3 + usable_cpus() * 512 * 1024**2


@cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def path_arg(path: str | os.PathLike) -> str:
    """A path as an ffmpeg argument: absolute, so a name like ``-x.mp4`` or
    ``http:x.mp4`` is never taken for an option or a protocol."""
    return os.path.abspath(path)


def input_args(path: str | os.PathLike) -> list[str]:
    """``-i path`` restricted to the media demuxers and to plain files."""
    return ["-format_whitelist", FORMAT_WHITELIST, "-protocol_whitelist", PROTOCOL_WHITELIST,
            "-i", path_arg(path)]  # fmt: skip


def lavfi_args(graph: str) -> list[str]:
    """A generated input (test pattern, tone): only the lavfi device, no files."""
    return ["-format_whitelist", "lavfi", "-protocol_whitelist", PROTOCOL_WHITELIST,
            "-f", "lavfi", "-i", graph]  # fmt: skip


def base_command(*, loglevel: str = "error") -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", loglevel, "-y"]


def configured_memory_bytes() -> int:
    try:
        return settings.MEDIA_FFMPEG_MAX_MEMORY_BYTES
    except ImproperlyConfigured:  # the media functions also serve bench/ without Django
        return 0


def _limit_child(limits: Limits):
    memory = limits.memory_bytes or configured_memory_bytes() or default_memory_bytes()
    cpu, fsize = limits.cpu_seconds, max(limits.output_bytes, STDERR_MAX_BYTES)

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        # SIGXCPU at the soft limit, SIGKILL one second later.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def child_env() -> dict[str, str]:
    """ffmpeg gets no secrets from the portal's environment, and glibc is told
    to keep few malloc arenas (each reserves 64 MiB of address space under
    RLIMIT_AS)."""
    keep = {
        key: os.environ[key] for key in ("PATH", "TMPDIR", "LANG", "LC_ALL") if key in os.environ
    }
    return {**keep, "MALLOC_ARENA_MAX": "2"}


def tail(stderr_file, lines: int = STDERR_TAIL_LINES) -> str:
    stderr_file.seek(0, os.SEEK_END)
    size = stderr_file.tell()
    stderr_file.seek(max(0, size - 8192))
    text = _LOG_PREFIX.sub("", stderr_file.read().decode("utf-8", "replace"))
    return "\n".join(line.strip() for line in text.strip().splitlines()[-lines:])


def run(cmd: Sequence[str], what: str, limits: Limits, *, stderr_file=None) -> int:
    """Run ffmpeg under ``limits``; raise MediaError("<what> ...\n<stderr tail>")
    when it fails, overruns its time or hits a limit. With ``stderr_file`` the
    caller reads stderr itself and gets the exit status instead of an error."""
    own = stderr_file is None
    err = tempfile.TemporaryFile() if own else stderr_file
    try:
        try:
            proc = subprocess.run(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=limits.timeout,
                preexec_fn=_limit_child(limits),  # noqa: PLW1509 - only setrlimit
                env=child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MediaError(
                f"{what} took longer than {limits.timeout:g} s and was stopped.\n{tail(err)}"
            ) from exc
        code = proc.returncode
        if code < 0:
            signal_name = {-9: "SIGKILL", -24: "SIGXCPU", -25: "SIGXFSZ"}.get(code, str(-code))
            raise MediaError(
                f"{what} was stopped by a resource limit ({signal_name}).\n{tail(err)}"
            )
        if own and code != 0:
            raise MediaError(f"{what} failed (ffmpeg exit {code}).\n{tail(err)}")
        return code
    finally:
        if own:
            err.close()
