"""Third-party chatter kept out of our output while we export and quantise: torch.onnx's
registry warnings (torchvision ops it skips), onnxscript's optimiser notes, and ONNX Runtime's
quantiser (root-logger "consider pre-processing" warnings, its histogram print()s, and the C++
"Removing initializer" warnings of the sessions it opens on its own rewritten graphs). Errors
still show; with debug logging (``streamer -v``) everything shows."""

from __future__ import annotations

import contextlib
import io
import logging
import os

NOISY_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir", "torchvision")
NOISY_PACKAGES = ("onnxruntime", "onnxscript", "onnx_ir", "torchvision", f"torch{os.sep}onnx")


class _DropChatter(logging.Filter):
    """Drops records below ERROR logged from code inside the noisy packages (whatever logger)."""

    parts = tuple(f"{os.sep}{p}{os.sep}" for p in NOISY_PACKAGES)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not any(p in record.pathname for p in self.parts)


@contextlib.contextmanager
def quiet_third_party():
    root = logging.getLogger()
    if root.isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    drop = _DropChatter()
    handlers = list(root.handlers)
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    for h in handlers:
        h.addFilter(drop)
    import onnxruntime  # a runtime dependency; imported here to keep this module light

    onnxruntime.set_default_logger_severity(ORT_ERROR)  # sessions opened meanwhile: errors only
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        onnxruntime.set_default_logger_severity(ORT_WARNING)  # its default (it has no getter)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for h in handlers:
            h.removeFilter(drop)


ORT_WARNING, ORT_ERROR = 2, 3  # onnxruntime's logger severities
