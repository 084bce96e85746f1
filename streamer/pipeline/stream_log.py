"""Log lines that say which stream they are about, when a pipeline has several: each stream's
threads, and the inference thread while it works on that stream's frame, mark themselves, and
:class:`StreamTag` (a handler filter the CLI installs) puts ``[name]`` before their messages."""

from __future__ import annotations

import logging
import threading

_local = threading.local()


def mark(stream: str | None) -> None:
    """This thread now works for ``stream`` (None: for no one stream)."""
    _local.stream = stream


class StreamTag(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        stream = getattr(_local, "stream", None)
        if stream and not getattr(record, "stream_tagged", False):
            record.msg, record.stream_tagged = f"[{stream}] {record.msg}", True
        return True
