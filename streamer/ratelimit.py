"""Log lines that can repeat (a frame at a time, a client at a time) logged at most once per
interval, with the count of those held back."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class RateLimitedLog:
    """Logs at most once per ``interval`` seconds, saying how many messages it held back."""

    def __init__(self, interval: float = 5.0, logger: logging.Logger | None = None):
        self.interval, self._last, self._held = interval, -1e9, 0
        self._log = logger or log  # the caller's logger, so its lines carry the caller's name

    def __call__(self, level: int, msg: str, *args, exc_info=False) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        self._log.log(level, msg + (f" (+{held} similar)" if held else ""), *args, exc_info=exc_info)
