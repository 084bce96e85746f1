"""The hand-over between two stage threads: a bounded slot, lossless or latest-frame-wins."""

from __future__ import annotations

import threading
from collections import deque

POLL_S = 0.05  # the longest any loop waits before looking at the stop event again


class FrameSlot:
    """A bounded hand-over between two threads. ``lossless``: a full slot makes the writer wait;
    otherwise (latest-frame policy) a put into a full slot evicts and returns the oldest item."""

    def __init__(self, capacity: int, lossless: bool):
        self.capacity, self.lossless = capacity, lossless
        self._items: deque = deque()
        self._cond = threading.Condition()

    def put(self, item, timeout: float) -> tuple[bool, object | None]:
        """(accepted, evicted item or None); a lossless slot may refuse after ``timeout``."""
        with self._cond:
            evicted = None
            if len(self._items) >= self.capacity:
                if self.lossless:
                    if not self._cond.wait_for(lambda: len(self._items) < self.capacity, timeout):
                        return False, None
                else:
                    evicted = self._items.popleft()
            self._items.append(item)
            self._cond.notify_all()
            return True, evicted

    def get(self, timeout: float):
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_many(self, most: int, timeout: float) -> list:
        """Whatever is waiting, up to ``most`` items, oldest first; waits for the first."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return []
            items = [self._items.popleft() for _ in range(min(most, len(self._items)))]
            self._cond.notify_all()
            return items

    def drain(self) -> list:
        with self._cond:
            items, self._items = list(self._items), deque()
            self._cond.notify_all()
            return items

    def __len__(self) -> int:
        return len(self._items)
