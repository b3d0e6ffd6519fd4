"""What the server's logs may hold: uvicorn's access log would record query strings, and
``GET /responsibilities/search?q=…`` carries a citizen's own words (maybe a phone number). The filter
keeps the path and drops the query: ``GET /responsibilities/search?… 200``. The service's own news worth an operator's
eye (``hotline.reload``: which version and lists it now serves) is printed beside uvicorn's lines."""
from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
NEWS_LOGGERS = ("hotline.reload",)


class DropQueryString(logging.Filter):
    """Rewrites uvicorn access records (args: client, method, path, http version, status) to the path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = args[:2] + (args[2].split("?", 1)[0] + "?…",) + args[3:]
        return True


def install() -> None:
    """Add the filter to uvicorn's access logger once (idempotent: apps made in tests share the logger)."""
    log = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, DropQueryString) for f in log.filters):
        log.addFilter(DropQueryString())
    for name in NEWS_LOGGERS:
        news = logging.getLogger(name)
        if not any(getattr(h, "_hotline", False) for h in news.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
            handler._hotline = True
            news.addHandler(handler)
            news.setLevel(logging.INFO)
