"""The Recordings report's hand-written HTML, all in one place: the table's
header and rows, the room ``<option>``s and the chart's bars.

Written out here rather than by the template: a page of 100 sessions has 500
file links and up to 732 bars, and Django's template engine and
``format_html`` cost several times more per item than this does (see
bench/README.md, "Report"). Every value from the database goes through
``escape``; the header and the cells of ``RowWriter.row`` stay in step here."""

from __future__ import annotations

import hashlib
import hmac
from html import escape

from django.core import signing
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.safestring import SafeString, mark_safe

from portal.sizes import human_size

from .links import SALT, files_origin
from .models import RecordingFile, Session

VIDEO_TYPES = (
    RecordingFile.Type.TRANSCODED,
    RecordingFile.Type.LIVE,
    RecordingFile.Type.INDIVIDUAL,
)
VIEWABLE_TYPES = (RecordingFile.Type.CHAT, RecordingFile.Type.METADATA)
GROUPS = [
    (RecordingFile.Type.INDIVIDUAL, "Individual recordings"),
    (RecordingFile.Type.LIVE, "Live recordings"),
    (RecordingFile.Type.TRANSCODED, "Transcoded"),
    (RecordingFile.Type.CHAT, "Chat"),
    (RecordingFile.Type.METADATA, "Metadata"),
]
STATE_LABELS = dict(Session.State.choices)
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


COLUMNS = ("Room", "Conference", "Start", "Duration", "Participants", "Size", "Files")
TABLE_HEAD = mark_safe(
    "<thead><tr>" + "".join(f"<th>{column}</th>" for column in COLUMNS) + "</tr></thead>"
)


def room_options(choices: list[tuple[str, str]], chosen: str) -> SafeString:
    return mark_safe(
        "".join(
            f'<option value="{escape(str(value))}"{" selected" if str(value) == chosen else ""}>'
            f"{escape(str(label))}</option>"
            for value, label in choices
        )
    )


def chart_bars(days: list[dict], css: str, y: str, h: str, label: str) -> SafeString:
    return mark_safe(
        "".join(
            f'<rect class="{css}" x="{d["x"]}" y="{d[y]}" width="8" height="{d[h]}">'
            f"<title>{d[label]}</title></rect>"
            for d in days
        )
    )


def is_video(content_type: str, name: str) -> bool:
    if content_type:
        return content_type.startswith("video/")
    return name.lower().endswith(VIDEO_SUFFIXES)


class PageSigner(signing.TimestampSigner):
    """Makes exactly the tokens of ``links.make_token`` (``signing.dumps`` with
    its salt), which ``/dl/<token>`` checks with ``signing.loads``; but derives
    the HMAC key and takes the timestamp once per page instead of per link."""

    def __init__(self) -> None:
        super().__init__(salt=SALT)
        key = hashlib.sha256(force_bytes(self.salt) + b"signer" + force_bytes(self.key)).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._timestamp = super().timestamp()

    def timestamp(self) -> str:
        return self._timestamp

    def file_token(self, file_id: int, *, poster: bool = False) -> str:
        """``sign_object([file_id])`` (or ``[file_id, "poster"]``) without the
        serializer: the JSON of such a list is known."""
        data = f'[{file_id},"poster"]' if poster else f"[{file_id}]"
        return self.sign(signing.b64_encode(data.encode()).decode())

    def signature(self, value, key=None) -> str:
        if key is not None and key != self.key:
            return super().signature(value, key)
        mac = self._mac.copy()
        mac.update(value.encode())
        return signing.b64_encode(mac.digest()).decode()


class RowWriter:
    """Writes the ``<tr>`` of a session and its files, with signed links."""

    def __init__(self, app_id: str) -> None:
        self.signer = PageSigner()
        self.dl_prefix = (
            files_origin(absolute=False) + reverse("recordings:download", args=["_"])[:-1]
        )
        self.view_prefix = reverse("recordings:file", args=[app_id, 0])[:-2]

    def link(self, file_id: int, poster: bool = False) -> str:
        return self.dl_prefix + self.signer.file_token(file_id, poster=poster)

    def files(self, files: list[tuple]) -> str:
        by_type: dict[str, list[str]] = {}
        player: dict[str, tuple[int, str, str, object]] = {}
        for pk, _, kind, name, size, participant, content_type, poster, expired in files:
            extra = escape(human_size(size) + (f" · {participant}" if participant else ""))
            if expired is not None:
                by_type.setdefault(kind, []).append(
                    f'<li><span class="muted">{escape(name)}</span> '
                    f'<span class="badge bad">expired</span> <span class="muted">{extra}</span></li>'
                )
                continue
            link = self.link(pk)
            view = ""
            if is_video(content_type, name):
                player.setdefault(kind, (pk, name, link, poster))
                view = f' <a class="view" href="{self.view_prefix}{pk}/">play</a>'
            elif kind in VIEWABLE_TYPES:
                view = f' <a class="view" href="{self.view_prefix}{pk}/">view</a>'
            by_type.setdefault(kind, []).append(
                f'<li><a href="{link}" download>{escape(name)}</a> '
                f'<span class="muted">{extra}</span>{view}</li>'
            )
        parts = []
        for kind in VIDEO_TYPES:
            if kind in player:
                pk, name, link, poster = player[kind]
                poster_attr = f' poster="{self.link(pk, poster=True)}"' if poster else ""
                parts.append(
                    f'<video controls preload="metadata" src="{link}?inline=1"{poster_attr} '
                    f'aria-label="Play {escape(name)}"></video>'
                )
                break
        for kind, label in GROUPS:
            if kind in by_type:
                parts.append(
                    f'<div class="file-group"><span class="group-label">{label}</span>'
                    f"<ul>{''.join(by_type[kind])}</ul></div>"
                )
        return "".join(parts) or '<span class="muted">No files yet.</span>'

    def row(self, s: dict, files: list[tuple]) -> str:
        state = ""
        if s["state"] != Session.State.READY:
            label = escape(STATE_LABELS.get(s["state"], s["state"]))
            state = f' <span class="badge state-{escape(s["state"])}">{label}</span>'
            if s["processing_error"]:
                state += f'<br><span class="small muted">{escape(s["processing_error"])}</span>'
        start = s["started_at"]
        return (
            f'<tr><td data-label="Room">{escape(s["room__name"])}<br>'
            f'<code class="small">{escape(s["room__room_id"])}</code></td>'
            f'<td data-label="Conference"><code>{escape(s["conf_num"])}</code>{state}</td>'
            f'<td data-label="Start"><time datetime="{start.isoformat()}">'
            f"{start:%Y-%m-%d %H:%M} UTC</time></td>"
            f'<td data-label="Duration">{human_duration(s["duration_seconds"])}</td>'
            f'<td data-label="Participants">{s["participant_count"]}</td>'
            f'<td data-label="Size">{human_size(s["total_size"])}</td>'
            f'<td data-label="Files" class="files">{self.files(files)}</td></tr>\n'
        )
