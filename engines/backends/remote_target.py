"""Where the remote model lives: ``grpc[s]://HOST[:PORT][/MODEL]`` parsed, the client library
checked, and the model parameters read from a v2 metadata answer (a field tritonclient's protos
predate)."""

from __future__ import annotations

from urllib.parse import urlsplit

from engines.backends.base import BackendError
from engines.serving.contract import DEFAULT_MODEL_NAME

DEFAULT_PORT = 8001
DEFAULT_TLS_PORT = 443  # a TLS terminator (nginx, an ingress) in front of the server
SCHEMES = ("grpc", "grpcs")


def parse_target(target: str) -> tuple[str, str]:
    """``grpc[s]://host[:port][/model]`` → ("host:port", model)."""
    parts = urlsplit(target)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise BackendError(f"remote server must be grpc://HOST:PORT[/MODEL] (or grpcs:// for "
                           f"TLS), got {target!r}")
    try:
        port = parts.port or (DEFAULT_TLS_PORT if parts.scheme == "grpcs" else DEFAULT_PORT)
    except ValueError:
        raise BackendError(f"remote server {target!r} has a bad port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", parts.path.strip("/") or DEFAULT_MODEL_NAME


INSTALL_HINT = "pip install 'sonostream[remote]' (in a checkout: pip install -e '.[remote]')"


def require_client() -> None:
    """The gRPC client (the ``remote`` extra) is importable, or one BackendError saying which
    extra to install: a bare ``No module named 'tritonclient'`` does not say what to do."""
    try:
        import tritonclient.grpc  # noqa: F401
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise BackendError(f"--backend remote needs the 'remote' extra (tritonclient[grpc]; "
                           f"no module {missing} here): {INSTALL_HINT}") from None


def remote_target(server: str, model: str = "") -> str:
    """The backend's target from a ``--server`` URL and an optional model name."""
    url, default = parse_target(server)
    return f"{urlsplit(server).scheme}://{url}/{model or default}"


def metadata_parameters(meta) -> dict[str, str]:
    """The ``parameters`` map of a v2 ModelMetadataResponse (field 6, as MLServer sends it).

    tritonclient's protos predate that field, so it arrives as an unknown field: each entry is a
    map entry {1: key, 2: InferParameter}, the wire form of ModelInferRequest.ParametersEntry.
    """
    from google.protobuf import unknown_fields
    from tritonclient.grpc import service_pb2

    if "parameters" in meta.DESCRIPTOR.fields_by_name:  # a client whose protos know the field
        return {k: str(getattr(v, v.WhichOneof("parameter_choice") or "string_param"))
                for k, v in meta.parameters.items()}
    entry_type = service_pb2.ModelInferRequest.ParametersEntry
    out = {}
    for field in unknown_fields.UnknownFieldSet(meta):
        if field.field_number == 6 and isinstance(field.data, bytes):
            entry = entry_type.FromString(field.data)
            value = entry.value
            kind = value.WhichOneof("parameter_choice")
            out[entry.key] = str(getattr(value, kind)) if kind else ""
    return out
