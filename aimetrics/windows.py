"""The window of the AI metrics dashboard and report: presets like `7d`, or dates and times."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

MAX_WINDOW = timedelta(days=366)
HOURLY_UP_TO = timedelta(days=7)  # longer windows are drawn per day
_RELATIVE = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class WindowError(ValueError):
    """A window that cannot be used; the message says why, for a form or a command.

    `field` names the bad input ("since" or "until"), or is None when the pair is wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Window:
    """`since` ≤ created_at < `until`."""

    since: datetime
    until: datetime

    @property
    def bucket(self) -> Literal["hour", "day"]:
        return "hour" if self.until - self.since <= HOURLY_UP_TO else "day"


def window_parse(*, since: str, until: str | None = None, now: datetime | None = None) -> Window:
    """Read a window: `30m`, `24h`, `7d` (that long before now) or an ISO date or datetime.

    A date as `since` starts at its midnight; a date as `until` includes that whole day. Naive
    datetimes are in the current time zone. Raises WindowError with a readable message.
    """
    now = now or timezone.now()
    start = _moment(since.strip(), now=now, end_of_day=False, name="since")
    end = _moment(until.strip(), now=now, end_of_day=True, name="until") if until else now
    if start >= end:
        raise WindowError(_("The start of the window must be before its end."))
    if end - start > MAX_WINDOW:
        raise WindowError(
            _("The window may span at most %(days)d days.") % {"days": MAX_WINDOW.days}
        )
    return Window(since=start, until=end)


def _moment(value: str, *, now: datetime, end_of_day: bool, name: str) -> datetime:
    match = _RELATIVE.match(value)
    if match:
        amount = int(match[1])
        if amount > MAX_WINDOW.days * 24 * 60:
            raise WindowError(_("“%(value)s” is too far back.") % {"value": value}, field=name)
        return now - timedelta(**{_UNITS[match[2]]: amount})
    try:
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
    except ValueError:  # well formed but impossible, e.g. 2026-02-30
        raise WindowError(
            _("“%(value)s” is not a valid date.") % {"value": value}, field=name
        ) from None
    if day is not None:
        if end_of_day:
            day += timedelta(days=1)
        moment = datetime.combine(day, time.min)
    if moment is None:
        raise WindowError(
            _(
                "“%(value)s” is neither a duration (30m, 24h, 7d) nor a date (2026-11-01) "
                "or a date and time (2026-11-01T08:00)."
            )
            % {"value": value},
            field=name,
        )
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
