"""The one error type for bad input: a command prints it as one line and exits 2.

Anything else that escapes a command is a bug: it exits 1 with its traceback. ``UserError`` is a
``ValueError`` so code that validates with ``except ValueError`` keeps working.
"""

from __future__ import annotations

import contextlib

from engines.errors import UserError

__all__ = ["UserError", "user_input"]


@contextlib.contextmanager
def user_input(what: str, errors: tuple[type[BaseException], ...] = (Exception,),
               subject: object = None):
    """Turn ``errors`` raised while reading user input into one UserError naming ``what`` (left
    out when the error already names ``subject``, e.g. the file's path).

    Wrap only the step that reads the input (opening a model, a checkpoint, a video, a data
    set), never the work done with it, so a bug there still gives a traceback."""
    try:
        yield
    except UserError:
        raise
    except errors as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if subject is not None and str(subject) in reason:
            raise UserError(reason) from exc
        raise UserError(f"{what}: {reason}") from exc
