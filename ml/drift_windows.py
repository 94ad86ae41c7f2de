"""The time windows a drift check compares, how their moments are written, and the error for
inputs that cannot be compared.

A window is a closed interval of trade time with both ends timezone-aware; the drift file and
the report write every moment as ISO-8601 UTC with milliseconds and a trailing Z, like the
landing files. Standard library only: the retraining trigger imports this without numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


class DriftInputError(ValueError):
    """The windows handed to the drift check cannot be compared (empty, missing columns, ...)."""


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z, like the landing files."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class TimeWindow:
    """A closed time interval, both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if getattr(self, name).tzinfo is None:
                raise DriftInputError(f"window {name} needs a timezone (e.g. UTC)")
        if self.end < self.start:
            raise DriftInputError(
                f"window ends ({iso_utc(self.end)}) before it starts ({iso_utc(self.start)})"
            )

    @classmethod
    def of(cls, value: TimeWindow | tuple[datetime, datetime]) -> TimeWindow:
        """Accept a TimeWindow or a (start, end) pair."""
        if isinstance(value, TimeWindow):
            return value
        start, end = value
        return cls(start, end)
