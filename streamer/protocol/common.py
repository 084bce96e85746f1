"""What every message of the wire format shares: the version, the JSON part's reading (bounded,
total: one error type per side), topics and stream names."""

from __future__ import annotations

import json
import re

from streamer.errors import UserError

VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"  # where a streamer publishes results unless told
MAX_JSON_BYTES = 1 << 20  # headers and results are small; a larger JSON part is refused
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MessageError(ValueError):
    """An output message (det/map/status) that does not decode."""


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _json(part, what: str, error=ValueError) -> dict:
    data = bytes(part)
    if len(data) > MAX_JSON_BYTES:
        raise error(f"{what} is {len(data)} bytes, more than {MAX_JSON_BYTES}")
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise error(f"{what} is not usable JSON: {_short(exc)}") from None
    if not isinstance(obj, dict):
        raise error(f"{what} must be a JSON object, got {type(obj).__name__}")
    if obj.get("v") != VERSION:
        raise error(f"unsupported protocol version {_short(repr(obj.get('v')), 40)} "
                    f"(this side speaks v{VERSION})")
    return obj


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_stream_name(stream: str) -> str:
    """Stream names go into topics, so they are kept to letters, digits, '_' and '-'."""
    if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
        raise UserError(f"stream name must be 1-64 of [A-Za-z0-9_-], got {stream!r}")
    return stream


def topic(kind: str, stream: str) -> bytes:
    return f"{kind}.{check_stream_name(stream)}".encode()


def _dumps(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
