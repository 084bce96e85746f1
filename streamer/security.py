"""CurveZMQ for remote use: key pairs, publishers that authenticate subscribers, and the rule
that decides whether an endpoint may be used at all.

Frames and results are patient data. Loopback (127.0.0.0/8, localhost, ::1, ipc://, inproc://)
needs nothing; anything else needs CurveZMQ keys (encrypted, and the publisher accepts only the
client keys in its allowed-clients folder), or an explicit ``insecure`` that logs a warning.
Keys are files in the format pyzmq's ``zmq.auth`` reads (``streamer keys --out DIR``), secrets
created 0600 and folders 0700 whatever the umask. Failed handshakes are counted and logged
(streamer.auth_failures).
"""

from __future__ import annotations

import datetime
import itertools
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from engines.addresses import is_local_host
from streamer.errors import UserError

log = logging.getLogger(__name__)
ALLOWED_CLIENTS = "allowed_clients"
SCHEMES = ("tcp", "ipc", "inproc")


def check_endpoint(endpoint: str) -> None:
    """Refuse an endpoint ZeroMQ would not take, saying what to write instead: ``127.0.0.1:5556``
    has no scheme (use ``tcp://127.0.0.1:5556``). The first check on every endpoint."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        fixed = f"tcp://127.0.0.1:{endpoint}" if endpoint.isdigit() else f"tcp://{endpoint}"
        raise UserError(f"endpoint {endpoint!r} has no scheme: use {fixed}" if endpoint.strip()
                        else "empty endpoint: use tcp://HOST:PORT")
    if scheme not in SCHEMES:
        raise UserError(f"endpoint {endpoint!r} must be tcp://, ipc:// or inproc://")
    if not rest:
        raise UserError(f"endpoint {endpoint!r} has no address: e.g. tcp://127.0.0.1:5556")


def is_local_endpoint(endpoint: str) -> bool:
    """ipc/inproc, or tcp on a loopback address or interface, decided on the parsed address. A
    source-address form (ZeroMQ's ``tcp://src;dst``) is never local: its destination is another
    host's to choose."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or ";" in rest:
        return False
    return is_local_host(rest.rpartition(":")[0])


def make_keys(out: str | Path) -> dict[str, Path]:
    """A server and a client key pair in ``out`` (zmq.auth certificate files), and the client's
    public key copied into ``out/allowed_clients`` for the publisher to accept."""
    out = Path(out)
    existing = [p for p in ("server.key_secret", "client.key_secret") if (out / p).exists()]
    if existing:
        raise UserError(f"{out} already holds {', '.join(existing)}; choose an empty folder")
    allowed = out / ALLOWED_CLIENTS
    paths = {}
    try:
        _private_folder(allowed)
        pairs = {name: zmq.curve_keypair() for name in ("server", "client")}
        for name, (public, secret) in pairs.items():
            paths[f"{name}_public"] = _write_key(out / f"{name}.key", public)
            paths[f"{name}_secret"] = _write_key(out / f"{name}.key_secret", public, secret)
        _write_key(allowed / "client.key", pairs["client"][0])
    except OSError as exc:
        raise UserError(f"cannot write keys to {out}: {exc.strerror or exc}") from None
    return {**paths, "allowed_clients": allowed}


def _private_folder(folder: Path) -> None:
    """``folder`` and its missing parents created 0700 whatever the umask (a folder that
    already exists keeps its mode: it may be the user's own)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
        p.chmod(0o700)


def _write_key(path: Path, public: bytes, secret: bytes | None = None) -> Path:
    """A zmq.auth certificate file written whole or not at all: created under a temporary name
    in the same folder with its final mode (0600 for a secret, 0644 else), then renamed."""
    kind = "**Secret**" if secret else "Public"
    text = (f"#   ****  Generated on {datetime.datetime.now()} by sonostream  ****\n"
            f"#   ZeroMQ CURVE {kind} Certificate\n\nmetadata\ncurve\n"
            f'    public-key = "{public.decode()}"\n'
            + (f'    secret-key = "{secret.decode()}"\n' if secret else ""))
    mode = 0o600 if secret else 0o644
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # never wider than mode
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)  # nor narrower (a umask that takes the owner's bits)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _load(path: str, secret: bool) -> tuple[bytes, bytes | None]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"CurveZMQ key file not found: {path}")
    try:
        public, private = zmq.auth.load_certificate(p)
    except Exception as exc:
        raise UserError(f"not a CurveZMQ key file: {path} ({exc})") from None
    if secret and not private:
        raise UserError(f"{path} holds no secret key (give the .key_secret file)")
    return public, private


@dataclass(frozen=True)
class ServerKeys:
    """A publisher's secret key file and the folder of client public keys it accepts."""

    secret_file: str
    clients_dir: str

    def __post_init__(self):
        _load(self.secret_file, secret=True)
        if not Path(self.clients_dir).is_dir():
            raise UserError(f"allowed-clients folder not found: {self.clients_dir}")
        if not any(Path(self.clients_dir).glob("*.key")):
            raise UserError(f"no client public keys (*.key) in {self.clients_dir}")


@dataclass(frozen=True)
class ClientKeys:
    """A subscriber's view: the server's public key file and the client's secret key file."""

    server_public_file: str
    client_secret_file: str

    def __post_init__(self):
        _load(self.server_public_file, secret=False)
        _load(self.client_secret_file, secret=True)


def client_keys(server_key: str | None, client_key: str | None) -> ClientKeys | None:
    """ClientKeys from two optional paths: both or neither."""
    if not server_key and not client_key:
        return None
    if not (server_key and client_key):
        raise UserError("CurveZMQ needs both the server's public key and the client's secret key")
    return ClientKeys(server_key, client_key)


_auth_lock = threading.Lock()
_authenticator = None
_domains = itertools.count()


def _auth():
    """One ZAP authenticator for the process's shared context (ZeroMQ allows one per context)."""
    global _authenticator
    with _auth_lock:
        if _authenticator is None:
            from streamer.auth_failures import Authenticator

            _authenticator = Authenticator(zmq.Context.instance(), log=log)
            _authenticator.start()
        return _authenticator


def make_server(sock: zmq.Socket, keys: ServerKeys) -> None:
    """Before bind: encrypt, accept only clients whose public key is in ``clients_dir``, and
    count and log the handshakes that fail (streamer.auth_failures)."""
    from streamer.auth_failures import watch

    domain = f"sonostream-{next(_domains)}"
    _auth().allow_clients(domain, keys.clients_dir)
    public, secret = _load(keys.secret_file, secret=True)
    sock.zap_domain = domain.encode()
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    watch(sock, domain)


def make_client(sock: zmq.Socket, keys: ClientKeys) -> None:
    """Before connect: encrypt and present the client key the server must know; a handshake
    the publisher refuses is counted and logged (streamer.auth_failures)."""
    from streamer.auth_failures import watch

    server_public, _ = _load(keys.server_public_file, secret=False)
    public, secret = _load(keys.client_secret_file, secret=True)
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    watch(sock)


def check_remote(endpoint: str, *, encrypted: bool, insecure: bool, what: str,
                 allow_remote: bool = True) -> None:
    """Refuse a non-loopback ``endpoint`` unless allowed and either encrypted or ``insecure``
    (then warn once at start). A malformed endpoint is refused first (check_endpoint)."""
    check_endpoint(endpoint)
    if is_local_endpoint(endpoint) or (encrypted and allow_remote):
        return
    if not allow_remote:
        raise UserError(f"refusing to bind {endpoint}: not a loopback address and frames are "
                        "patient data; allow it explicitly (allow_remote / --allow-remote)")
    if not insecure:
        raise UserError(f"refusing plaintext {what} on {endpoint}: remote use needs CurveZMQ keys "
                        "(streamer keys --out DIR), or --insecure to send patient data unencrypted")
    log.warning("INSECURE: %s on %s is plaintext and unauthenticated; anyone on the network can "
                "read the frames and results", what, endpoint)
