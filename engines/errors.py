"""The one error type for bad input, shared by every layer (the streamer re-exports it).

A command prints it as one line and exits 2; anything else that escapes is a bug (exit 1 with its
traceback). It is a ``ValueError`` so code that validates with ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: a flag, a config value, a file, a model, a data set."""
