"""CurveZMQ for remote use: key pairs, publishers that authenticate subscribers, and the rule
that decides whether an endpoint may be used at all.

Frames and results are patient data. Loopback (127.0.0.0/8, localhost, ::1, ipc://, inproc://)
needs nothing; anything else needs CurveZMQ keys (encrypted, and the publisher accepts only the
client keys in its allowed-clients folder), or an explicit ``insecure`` that logs a warning.
Keys are the files pyzmq's ``zmq.auth`` writes (``streamer keys --out DIR``).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from streamer.errors import UserError

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("localhost", "::1", "[::1]", "lo")
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


def is_local_host(host: str) -> bool:
    """A loopback IP address (127.0.0.0/8, ::1, written any way an IP parser reads it), or the
    names ``localhost`` and ``lo``. Other names are not taken on trust (``127.evil.example`` is a
    name, not an address): a remote name needs keys or ``--insecure``."""
    host = host.strip()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_keys(out: str | Path) -> dict[str, Path]:
    """A server and a client key pair in ``out`` (zmq.auth certificate files), and the client's
    public key copied into ``out/allowed_clients`` for the publisher to accept."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    existing = [p for p in ("server.key_secret", "client.key_secret") if (out / p).exists()]
    if existing:
        raise UserError(f"{out} already holds {', '.join(existing)}; choose an empty folder")
    server_public, server_secret = zmq.auth.create_certificates(out, "server")
    client_public, client_secret = zmq.auth.create_certificates(out, "client")
    allowed = out / ALLOWED_CLIENTS
    allowed.mkdir(exist_ok=True)
    shutil.copy(client_public, allowed / Path(client_public).name)
    for secret in (server_secret, client_secret):
        Path(secret).chmod(0o600)
    return {"server_public": Path(server_public), "server_secret": Path(server_secret),
            "client_public": Path(client_public), "client_secret": Path(client_secret),
            "allowed_clients": allowed}


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
            from zmq.auth.thread import ThreadAuthenticator

            _authenticator = ThreadAuthenticator(zmq.Context.instance(), log=log)
            _authenticator.start()
        return _authenticator


def make_server(sock: zmq.Socket, keys: ServerKeys) -> None:
    """Before bind: encrypt, and accept only clients whose public key is in ``clients_dir``."""
    domain = f"sonostream-{next(_domains)}"
    _auth().configure_curve(domain=domain, location=keys.clients_dir)
    public, secret = _load(keys.secret_file, secret=True)
    sock.zap_domain = domain.encode()
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True


def make_client(sock: zmq.Socket, keys: ClientKeys) -> None:
    """Before connect: encrypt and present the client key the server must know."""
    server_public, _ = _load(keys.server_public_file, secret=False)
    public, secret = _load(keys.client_secret_file, secret=True)
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret


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
