"""The Recordings report: filters, keyset pages of sessions with their files,
and the per-day chart. A page costs the same few queries whatever its size:
the sessions (one indexed range scan), their files (one prefetch), the day
totals (one grouped query) and the room list."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.db.models import Count, Prefetch, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from projects.models import Project

from .links import link_for
from .models import RecordingFile, Session

PAGE_SIZES = (25, 50, 100)
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
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
FILE_FIELDS = (
    "id", "session_id", "type", "name", "size", "participant", "content_type",
    "duration_seconds", "poster_path", "created_at", "expired_at",
)  # fmt: skip


def human_size(size: int) -> str:
    """Like |filesizeformat without its per-call localisation cost."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


class ReportFilterForm(forms.Form):
    per_page = forms.TypedChoiceField(
        label="Per page",
        choices=[(n, str(n)) for n in PAGE_SIZES],
        coerce=int,
        required=False,
        empty_value=PAGE_SIZES[0],
    )

    def __init__(self, data, *, rooms: list[tuple[str, str]]):
        super().__init__(data)
        today = timezone.now().date()
        date_widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        self.fields["from"] = forms.DateField(
            label="From (UTC)", required=False, widget=date_widget, input_formats=["%Y-%m-%d"]
        )
        self.fields["to"] = forms.DateField(
            label="To (UTC)", required=False, widget=date_widget, input_formats=["%Y-%m-%d"]
        )
        self.fields["room"] = forms.ChoiceField(
            label="Room", required=False, choices=[("", "All rooms"), *rooms]
        )
        self.default_to = today
        self.default_from = today - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        self.order_fields(["from", "to", "room", "per_page"])

    def clean(self):
        cleaned = super().clean()
        start = cleaned.get("from") or self.default_from
        end = cleaned.get("to") or self.default_to
        if "from" in cleaned and "to" in cleaned:
            if start > end:
                raise forms.ValidationError(
                    f"“From” ({start}) is after “To” ({end}); swap the dates."
                )
            if (end - start).days >= MAX_RANGE_DAYS:
                raise forms.ValidationError(
                    f"Choose a range of at most {MAX_RANGE_DAYS} days "
                    "(the Archive API lists longer periods)."
                )
        cleaned["from"], cleaned["to"] = start, end
        return cleaned


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """UTC instants covering the dates ``start``..``end`` inclusive."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def encode_cursor(session: Session) -> str:
    micros = int(session.started_at.timestamp() * 1_000_000)
    return f"{micros}.{session.pk}"


def decode_cursor(raw: str | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    try:
        micros, pk = (int(part) for part in raw.split(".", 1))
        return datetime.fromtimestamp(micros / 1_000_000, tz=UTC), pk
    except (ValueError, OverflowError, OSError):
        return None


@dataclass
class FileEntry:
    file: RecordingFile
    link: str | None
    inline_link: str | None = None
    poster_link: str | None = None
    view_url: str | None = None

    def as_html(self) -> str:
        """The file's list item. Built here rather than in the template: a
        page lists hundreds of files and this is several times faster."""
        rf = self.file
        extra = human_size(rf.size) + (f" · {rf.participant}" if rf.participant else "")
        if self.link is None:
            return format_html(
                '<li><span class="muted">{}</span> <span class="badge bad">expired</span> '
                '<span class="muted">{}</span></li>',
                rf.name,
                extra,
            )
        view = ""
        if self.view_url:
            label = "play" if self.inline_link else "view"
            view = format_html(' <a class="view" href="{}">{}</a>', self.view_url, label)
        return format_html(
            '<li><a href="{}" download>{}</a> <span class="muted">{}</span>{}</li>',
            self.link,
            rf.name,
            extra,
            view,
        )


@dataclass
class SessionRow:
    session: Session
    groups: list[tuple[str, list[FileEntry]]] = field(default_factory=list)
    player: FileEntry | None = None

    @property
    def size(self) -> str:
        return human_size(self.session.total_size)

    @property
    def duration(self) -> str:
        seconds = self.session.duration_seconds
        if seconds is None:
            return "—"
        minutes, secs = divmod(round(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Page:
    rows: list[SessionRow]
    newer: str | None
    older: str | None


def _is_video(rf: RecordingFile) -> bool:
    if rf.content_type:
        return rf.content_type.startswith("video/")
    return rf.name.lower().endswith((".mp4", ".webm", ".mkv", ".mov"))


def file_entry(rf: RecordingFile, view_prefix: str = "") -> FileEntry:
    if rf.is_expired:
        return FileEntry(rf, None)
    entry = FileEntry(rf, link_for(rf))
    if _is_video(rf):
        entry.inline_link = f"{entry.link}?inline=1"
        if rf.poster_path:
            entry.poster_link = link_for(rf, poster=True)
    if view_prefix and (entry.inline_link or rf.type in VIEWABLE_TYPES):
        entry.view_url = f"{view_prefix}{rf.pk}/"
    return entry


def _row(session: Session, view_prefix: str) -> SessionRow:
    row = SessionRow(session)
    by_type: dict[str, list[FileEntry]] = {}
    for rf in session.files.all():
        by_type.setdefault(rf.type, []).append(file_entry(rf, view_prefix))
    row.groups = [(label, by_type[kind]) for kind, label in GROUPS if kind in by_type]
    for kind in VIDEO_TYPES:
        playable = [e for e in by_type.get(kind, []) if e.inline_link]
        if playable:
            row.player = playable[0]
            break
    return row


def filtered_sessions(project: Project, start: date, end: date, room_pk: int | None):
    low, high = day_bounds(start, end)
    sessions = Session.objects.filter(project=project, started_at__gte=low, started_at__lt=high)
    if room_pk is not None:
        sessions = sessions.filter(room_id=room_pk)
    return sessions


def session_page(
    sessions,
    per_page: int,
    *,
    app_id: str,
    older_than: str | None = None,
    newer_than: str | None = None,
) -> Page:
    files = RecordingFile.objects.only(*FILE_FIELDS).order_by("type", "name")
    base = sessions.select_related("room").prefetch_related(Prefetch("files", queryset=files))
    after, before = decode_cursor(older_than), decode_cursor(newer_than)
    if before and not after:
        at, pk = before
        chunk = list(
            base.filter(Q(started_at__gt=at) | Q(started_at=at, pk__gt=pk)).order_by(
                "started_at", "id"
            )[: per_page + 1]
        )
        has_newer = len(chunk) > per_page
        chunk = list(reversed(chunk[:per_page]))
        has_older = True
    else:
        if after:
            at, pk = after
            base = base.filter(Q(started_at__lt=at) | Q(started_at=at, pk__lt=pk))
        chunk = list(base.order_by("-started_at", "-id")[: per_page + 1])
        has_older = len(chunk) > per_page
        chunk = chunk[:per_page]
        has_newer = after is not None
    view_prefix = reverse("recordings:file", args=[app_id, 0])[:-2]
    rows = [_row(s, view_prefix) for s in chunk]
    return Page(
        rows,
        newer=encode_cursor(chunk[0]) if chunk and has_newer else None,
        older=encode_cursor(chunk[-1]) if chunk and has_older else None,
    )


class UTCDay(TruncDate):
    """TruncDate (USE_TZ is on and TIME_ZONE is UTC) that SQLite can do in SQL:
    Django runs TruncDate there as a Python function per row, which dominates
    the chart query on big ranges. SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS'."""

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.lhs)
        return f"substr({sql}, 1, 10)", params


@dataclass
class Chart:
    days: list[dict]
    sessions: int
    bytes: int
    width: int
    height: int = 60


def day_chart(sessions, start: date, end: date) -> Chart:
    totals = {
        row["day"]: row
        for row in sessions.order_by()
        .annotate(day=UTCDay("started_at"))
        .values("day")
        .annotate(n=Count("id"), size=Sum("total_size"))
    }
    count = (end - start).days + 1
    raw = []
    for i in range(count):
        day = start + timedelta(days=i)
        got = totals.get(day) or {}
        raw.append((day, got.get("n") or 0, got.get("size") or 0))
    top_n = max((n for _, n, _ in raw), default=0) or 1
    top_size = max((s for _, _, s in raw), default=0) or 1
    bar, height = 10, 60
    days = []
    for i, (day, n, size) in enumerate(raw):
        n_h = round(n * height / top_n)
        s_h = round(size * height / top_size)
        days.append(
            {
                "day": day,
                "sessions": n,
                "bytes": size,
                "label": f"{day:%Y-%m-%d}: {n} session{'' if n == 1 else 's'}",
                "size_label": f"{day:%Y-%m-%d}: {human_size(size)}",
                "x": i * bar + 1,
                "sessions_h": n_h,
                "sessions_y": height - n_h,
                "bytes_h": s_h,
                "bytes_y": height - s_h,
            }
        )
    return Chart(
        days,
        sessions=sum(n for _, n, _ in raw),
        bytes=sum(s for _, _, s in raw),
        width=count * bar,
        height=height,
    )
