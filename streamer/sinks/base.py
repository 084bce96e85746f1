"""The one small interface every result sink implements (ZMQ publisher, recording, ...).

``publish`` is called from the pipeline's publish stage and must never block on a consumer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import ClassVar

from engines.specs import build_options
from streamer.frames import FrameResult


class Sink(ABC):
    kind: ClassVar[str]
    Options: ClassVar[type]  # a frozen dataclass

    def __init__(self, spec_options: dict | None = None, **options):
        self.options = build_options(self.Options, spec_options, **options)
        self.published = 0
        self._is_open = False

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _publish(self, result: FrameResult) -> None: ...

    def _publish_status(self, status: dict) -> None:  # noqa: B027 - optional hook
        pass

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def open(self) -> Sink:
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def publish(self, result: FrameResult) -> None:
        if not self._is_open:
            raise RuntimeError(f"{self.kind} sink is not open")
        self._publish(result)
        self.published += 1

    def publish_status(self, status: dict) -> None:
        """A periodic status object for ``stream`` (fps, drops, source state, backend)."""
        if not self._is_open:
            raise RuntimeError(f"{self.kind} sink is not open")
        self._publish_status(status)

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    def describe(self) -> dict:
        return {"kind": self.kind, **asdict(self.options), "published": self.published}

    def __enter__(self) -> Sink:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
