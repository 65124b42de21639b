"""Time stamps as Kubernetes writes them: RFC 3339, whole seconds, UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def now_text() -> str:
    """The current time in RFC 3339 (seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An RFC 3339 time stamp (seconds, UTC)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one time stamp to another."""
    return (parse_time(later) - parse_time(earlier)).total_seconds()
