"""The one way the portal writes a number of bytes, on every page, in the
delivery log and in error messages, so the same file reads the same
everywhere: decimal units (1 KB = 1000 bytes, as disks and transfer rates
are sold), one decimal.

Not Django's ``filesizeformat``: that one counts in 1024s, and localises on
every call, which the report (up to 500 file sizes a page, written without
the template engine for speed: bench/README.md, "Report") does not need."""

from __future__ import annotations

UNITS = ("KB", "MB", "GB", "TB")


def human_size(size: float | None) -> str:
    """``999 bytes``, ``1.0 KB``, ``1.5 GB``; None reads as 0 bytes."""
    value = float(size or 0)
    if abs(value) < 1000:
        return f"{int(value)} bytes"
    for unit in UNITS:
        value /= 1000
        if abs(value) < 999.95 or unit == UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable: the last unit always returns")
