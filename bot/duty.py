"""Duty hours of the officers' team: when a person reads along, and when they are back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ["mo", "di", "mi", "do", "fr", "sa", "so"]
DAY_ALIASES = {"tu": "di", "we": "mi", "th": "do", "su": "so"}
DAY_NAMES = {
    "de": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}
_PART = re.compile(
    r"^\s*(?P<d1>[a-z]{2})\s*(?:-\s*(?P<d2>[a-z]{2}))?\s+"
    r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$"
)


class DutyHoursError(ValueError):
    """DUTY_HOURS cannot be read."""


def _day(token: str) -> int:
    token = DAY_ALIASES.get(token, token)
    if token not in DAYS:
        raise DutyHoursError(f"unknown day {token!r}: use Mo Di Mi Do Fr Sa So")
    return DAYS.index(token)


@dataclass(frozen=True)
class DutyHours:
    """Weekly shifts such as "Mo-Fr 08:00-16:00; Sa 10:00-14:00" in one time zone."""

    shifts: tuple[tuple[int, time, time], ...]
    zone: ZoneInfo

    @classmethod
    def parse(cls, spec: str, timezone: str = "Europe/Berlin") -> "DutyHours":
        """Read a DUTY_HOURS value; an empty value or "24/7" means always on duty."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DutyHoursError(f"unknown TIMEZONE {timezone!r}") from None
        spec = spec.strip().lower()
        if spec in {"", "24/7", "always"}:
            return cls(tuple((d, time(0, 0), time(23, 59, 59)) for d in range(7)), zone)
        shifts = []
        for part in re.split(r"[;,]", spec):
            if not part.strip():
                continue
            match = _PART.match(part)
            if not match:
                raise DutyHoursError(f"cannot read duty hours {part.strip()!r}; example: 'Mo-Fr 08:00-16:00; Sa 10:00-14:00'")
            first = _day(match["d1"])
            last = _day(match["d2"]) if match["d2"] else first
            try:
                start = time(int(match["h1"]), int(match["m1"]))
                end = time(int(match["h2"]), int(match["m2"])) if match["h2"] != "24" else time(23, 59, 59)
            except ValueError as err:
                raise DutyHoursError(f"bad time in {part.strip()!r}: {err}") from None
            if end <= start:
                raise DutyHoursError(f"shift ends before it starts: {part.strip()!r}")
            for day in range(first, (last if last >= first else last + 7) + 1):
                shifts.append((day % 7, start, end))
        return cls(tuple(sorted(shifts)), zone)

    def on_duty(self, now: datetime) -> bool:
        """True while a shift is running at `now` (an aware datetime)."""
        local = now.astimezone(self.zone)
        return any(d == local.weekday() and s <= local.time() < e for d, s, e in self.shifts)

    def next_start(self, now: datetime) -> datetime:
        """The start of the next shift after `now`."""
        local = now.astimezone(self.zone)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            for weekday, start, _ in self.shifts:
                begin = datetime.combine(day, start, tzinfo=self.zone)
                if weekday == day.weekday() and begin > local:
                    return begin
        raise DutyHoursError("no shift in the week")

    def back_at(self, now: datetime, language: str) -> str:
        """Say when the team is back, e.g. "Montag ab 08:00" or "Monday from 08:00"."""
        start = self.next_start(now)
        local = now.astimezone(self.zone)
        days = (start.date() - local.date()).days
        clock = start.strftime("%H:%M")
        if language == "en":
            when = "today" if days == 0 else "tomorrow" if days == 1 else DAY_NAMES["en"][start.weekday()]
            return f"{when} from {clock}"
        when = "heute" if days == 0 else "morgen" if days == 1 else DAY_NAMES["de"][start.weekday()]
        return f"{when} ab {clock} Uhr"
