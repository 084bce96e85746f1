"""The hand-over between two stage threads: a bounded slot, lossless or latest-frame-wins."""

from __future__ import annotations

import threading
from collections import deque

POLL_S = 0.05  # the longest any loop waits before looking at the stop event again


class FrameSlot:
    """A bounded hand-over between two threads. ``lossless``: a full slot makes the writer wait;
    otherwise (latest-frame policy) a put into a full slot evicts and returns the oldest item.
    Slots given one ``cond`` share it, so one reader can wait on all of them (:class:`SlotGroup`)."""

    def __init__(self, capacity: int, lossless: bool, cond: threading.Condition | None = None):
        self.capacity, self.lossless = capacity, lossless
        self._items: deque = deque()
        self._cond = cond or threading.Condition()

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

    def pop_locked(self):
        """The oldest item or None; the caller holds the slot's condition."""
        return self._items.popleft() if self._items else None

    def drain(self) -> list:
        with self._cond:
            items, self._items = list(self._items), deque()
            self._cond.notify_all()
            return items

    def __len__(self) -> int:
        return len(self._items)


class SlotGroup:
    """Several slots sharing one condition, read in turn: a batch takes one item from each slot
    with items waiting, round after round, starting after the slot the last batch ended on, so a
    busy slot never starves a quiet one. Each batch taken gets the next ticket (0, 1, 2...), so
    readers working side by side can hand their results on in the order the frames were taken."""

    def __init__(self, slots: list[FrameSlot], cond: threading.Condition):
        self.slots, self._cond = slots, cond
        self._next = 0
        self._tickets = 0

    def take(self, most: int, timeout: float) -> tuple[int, list[tuple[int, object]]]:
        """(ticket, up to ``most`` (slot index, item) pairs) taken fairly across the slots;
        waits for the first. No items: ticket -1."""
        with self._cond:
            if not self._cond.wait_for(lambda: any(s._items for s in self.slots), timeout):
                return -1, []
            taken, n = [], len(self.slots)
            while len(taken) < most:
                before = len(taken)
                for k in range(n):
                    i = (self._next + k) % n
                    item = self.slots[i].pop_locked()
                    if item is not None:
                        taken.append((i, item))
                        if len(taken) == most:
                            break
                if len(taken) == before:
                    break
            self._next = (taken[-1][0] + 1) % n
            ticket, self._tickets = self._tickets, self._tickets + 1
            self._cond.notify_all()
            return ticket, taken

    def get_many(self, most: int, timeout: float) -> list[tuple[int, object]]:
        """Up to ``most`` (slot index, item) pairs, fairly across slots; waits for the first."""
        return self.take(most, timeout)[1]

    def __len__(self) -> int:
        return sum(len(s) for s in self.slots)
