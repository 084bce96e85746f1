"""ZMQ wire format, version 1: frames in, results/maps/status out (see docs/protocol.md).

Every message is multipart with the topic as its own first part, so SUB sockets filter by prefix.
Encoders return ``list[bytes]`` for ``send_multipart``; decoders take what ``recv_multipart``
returns (bytes or zmq.Frame) and are total: whatever arrives, the only exception they raise is
``InvalidFrame`` (frames) or ``MessageError`` (results, maps, status; a ``ValueError``).
"""

from engines.encoded import MAX_PIXELS
from streamer.protocol.common import (
    DEFAULT_ENDPOINT,
    MAX_JSON_BYTES,
    VERSION,
    MessageError,
    check_stream_name,
    topic,
)
from streamer.protocol.frames import (
    DTYPES,
    ENCODED_FORMATS,
    FORMATS,
    FRAME_FIELDS,
    FRAME_TOPIC,
    RAW_FORMATS,
    decode_frame,
    encode_frame,
    encoded_size,
    max_frame_bytes,
)
from streamer.protocol.messages import (
    DECODERS,
    MAX_PREVIEW_PIXELS,
    DetectionMessage,
    MapMessage,
    PreviewMessage,
    StatusMessage,
    decode_map,
    decode_message,
    decode_preview,
    decode_result,
    decode_status,
)
from streamer.protocol.results import (
    encode_map,
    encode_preview,
    encode_result,
    encode_status,
    result_dict,
)

__all__ = [
    "DECODERS", "DEFAULT_ENDPOINT", "DTYPES", "ENCODED_FORMATS", "FORMATS", "FRAME_FIELDS",
    "FRAME_TOPIC", "MAX_JSON_BYTES", "MAX_PIXELS", "MAX_PREVIEW_PIXELS", "RAW_FORMATS", "VERSION",
    "DetectionMessage", "MapMessage", "MessageError", "PreviewMessage", "StatusMessage",
    "check_stream_name", "decode_frame", "decode_map", "decode_message", "decode_preview",
    "decode_result", "decode_status", "encode_frame", "encode_map", "encode_preview",
    "encode_result", "encode_status", "encoded_size", "max_frame_bytes", "result_dict", "topic",
]
