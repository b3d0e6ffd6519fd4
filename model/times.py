"""Ticket times as exports write them (one reader for the duplicate detector and the training loader)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

#: naive times (no offset) are read as China Standard Time, the hotline's clock
CST = timezone(timedelta(hours=8))

# what exports write besides ISO 8601; strptime also reads unpadded months, days and hours (2019-4-24 9:02:04)
_DT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
               "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日")


def read_datetime(value: str | None) -> datetime | None:
    """A date/time as ticket exports write it — ISO 8601, ``2019-4-24 15:07:30``, ``2019/4/24 15:07``,
    ``2019年4月24日`` — timezone-aware (naive times are China Standard Time); ``None`` if unreadable."""
    s = str(value or "").strip()
    if not s:
        return None
    dt = None
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _DT_FORMATS:
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
    if dt is None:
        return None
    return dt.replace(tzinfo=CST) if dt.tzinfo is None else dt
