"""Formatting for people: one place, so the CLI and API messages say sizes the same way."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``1536`` → ``"1.5 KiB"`` (binary units, as disks and the upload limit are counted)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
