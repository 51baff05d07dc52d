"""The Recordings report: filters, keyset pages of sessions with their files,
and the per-day chart. A page costs the same few queries whatever its size:
the sessions (one indexed range scan), their files (one query), the day
totals (one grouped query on a covering index) and the room list.

Its HTML (rows, header, room options, chart bars) is written by
``recordings.report_html``, not the template, for speed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

from django import forms
from django.core.cache import caches
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from portal.sizes import human_size
from projects.models import Project

from . import report_html
from .links import link_for
from .models import RecordingFile, Session

PAGE_SIZES = (25, 50, 100)
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
SESSION_FIELDS = (
    "id", "conf_num", "state", "started_at", "duration_seconds", "participant_count",
    "total_size", "room__name", "room__room_id", "processing_error",
)  # fmt: skip
FILE_FIELDS = (
    "id", "session_id", "type", "name", "size", "participant", "content_type",
    "poster_path", "expired_at",
)  # fmt: skip


class ReportFilterForm(forms.Form):
    per_page = forms.TypedChoiceField(
        label="Per page",
        choices=[(n, str(n)) for n in PAGE_SIZES],
        coerce=int,
        required=False,
        empty_value=PAGE_SIZES[0],  # type: ignore[arg-type]  # stubs say str; Django takes any value
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
        self.room_choices = [("", "All rooms"), *rooms]
        self.fields["room"] = forms.ChoiceField(
            label="Room", required=False, choices=self.room_choices
        )
        self.default_to = today
        self.default_from = today - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        self.order_fields(["from", "to", "room", "per_page"])

    def room_options(self) -> SafeString:
        """The room ``<option>``s: a project can have hundreds of rooms."""
        return report_html.room_options(self.room_choices, str(self["room"].value() or ""))

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


def encode_cursor(session: dict) -> str:
    return f"{int(session['started_at'].timestamp() * 1_000_000)}.{session['id']}"


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
    """One file of the file page (``file_page``): its download, inline and
    poster links."""

    file: RecordingFile
    link: str | None
    inline_link: str | None = None
    poster_link: str | None = None


def file_entry(rf: RecordingFile) -> FileEntry:
    if rf.is_expired:
        return FileEntry(rf, None)
    entry = FileEntry(rf, link_for(rf))
    if report_html.is_video(rf.content_type, rf.name):
        entry.inline_link = f"{entry.link}?inline=1"
        if rf.poster_path:
            entry.poster_link = link_for(rf, poster=True)
    return entry


@dataclass
class SessionRow:
    session: SimpleNamespace  # the listed fields of the session, and pk
    html: SafeString


@dataclass
class Page:
    rows: list[SessionRow]
    newer: str | None
    older: str | None

    head = report_html.TABLE_HEAD

    @property
    def html(self) -> SafeString:
        return mark_safe("".join(row.html for row in self.rows))


def filtered_sessions(project: Project, start: date, end: date, room_pk: int | None):
    low, high = day_bounds(start, end)
    if room_pk is not None:
        return Session.objects.filter(room_id=room_pk, started_at__gte=low, started_at__lt=high)
    return Session.objects.filter(project=project, started_at__gte=low, started_at__lt=high)


def session_page(
    sessions,
    per_page: int,
    *,
    app_id: str,
    older_than: str | None = None,
    newer_than: str | None = None,
) -> Page:
    base = sessions.values(*SESSION_FIELDS)
    after, before = decode_cursor(older_than), decode_cursor(newer_than)
    if before and not after:
        at, pk = before
        newer_first = Q(started_at__gt=at) | Q(started_at=at, pk__gt=pk)
        chunk = list(base.filter(newer_first).order_by("started_at", "id")[: per_page + 1])
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
    files: dict[int, list[tuple]] = {s["id"]: [] for s in chunk}
    if files:
        file_rows = (
            RecordingFile.objects.filter(session_id__in=list(files))
            .order_by("session_id", "type", "name")
            .values_list(*FILE_FIELDS)
        )
        for rf in file_rows:
            files[rf[1]].append(rf)
    writer = report_html.RowWriter(app_id)
    rows = [
        SessionRow(SimpleNamespace(pk=s["id"], **s), mark_safe(writer.row(s, files[s["id"]])))
        for s in chunk
    ]
    return Page(
        rows,
        newer=encode_cursor(chunk[0]) if chunk and has_newer else None,
        older=encode_cursor(chunk[-1]) if chunk and has_older else None,
    )


class UTCDay(TruncDate):
    """TruncDate (USE_TZ is on and TIME_ZONE is UTC) that SQLite can do in SQL:
    Django runs TruncDate there as a Python function per row, which dominates
    the chart query on big ranges. SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS'.
    On PostgreSQL the value is the day's start (a datetime), see ``day_chart``."""

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.lhs)
        return f"substr({sql}, 1, 10)", params

    def as_postgresql(self, compiler, connection, **extra_context):
        # The UTC day's start instant: date_bin() costs a third of the
        # AT TIME ZONE 'UTC' and ::date casts TruncDate applies to every row.
        sql, params = compiler.compile(self.lhs)
        return f"date_bin('1 day', {sql}, TIMESTAMPTZ '2000-01-01 00:00:00+00')", params


@dataclass
class Chart:
    days: list[dict]
    sessions: int
    bytes: int
    width: int
    height: int = 60

    session_bars: SafeString = SafeString()
    byte_bars: SafeString = SafeString()

    def __post_init__(self) -> None:
        if self.days and not self.session_bars:
            self.session_bars = self._bars("bar-sessions", "sessions_y", "sessions_h", "label")
            self.byte_bars = self._bars("bar-bytes", "bytes_y", "bytes_h", "size_label")

    def _bars(self, css: str, y: str, h: str, label: str) -> SafeString:
        return report_html.chart_bars(self.days, css, y, h, label)


def day_chart(sessions, start: date, end: date) -> Chart:
    # COUNT(*), not COUNT(id): PostgreSQL then answers from the covering
    # (…, started_at, total_size) index without visiting the table.
    totals = {
        row["day"].date() if isinstance(row["day"], datetime) else row["day"]: row
        for row in sessions.order_by()
        .annotate(day=UTCDay("started_at"))
        .values("day")
        .annotate(n=Count("*"), size=Sum("total_size"))
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


CHART_CACHE_SECONDS = 60


def cached_day_chart(project: Project, start: date, end: date, room_pk: int | None) -> Chart:
    """The chart is the same on every page of a filter, so paging through a
    report computes it once a minute; new sessions show in it within a minute."""
    key = f"recordings.report.chart:{project.app_id}:{room_pk}:{start}:{end}"
    memo = caches["local"]  # per process: a shared (database) cache would cost queries
    chart = memo.get(key)
    if chart is None:
        chart = day_chart(filtered_sessions(project, start, end, room_pk), start, end)
        memo.set(key, chart, CHART_CACHE_SECONDS)
    return chart
