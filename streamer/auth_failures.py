"""Refused CurveZMQ handshakes made visible. ZeroMQ drops a connection whose handshake fails and
tells nobody, so a subscriber with an unknown key and a frame source holding the wrong server key
look like silence. Every CurveZMQ socket (streamer.security's make_server / make_client) gets a
monitor thread that, for each failed handshake:

- counts it, for ``streamer_auth_failures_total{stream,socket}`` (``socket``: ``publisher
  tcp://…`` or ``subscriber tcp://…``; every stream's registry shows the process's sockets);
- logs ``authentication failed on <socket> from <peer>: <why>``, at most once per interval per
  socket (the peer's address comes from the ZAP handler, which sees it; the monitor does not);
- keeps the reason until a handshake succeeds, so a frame source that gets nothing can say why.

A publisher counts refused client keys (ZAP) and protocol failures (another server key, a
plaintext client); a subscriber also counts a handshake the publisher dropped without a word
(what a wrong server key looks like from its side).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque

import zmq
import zmq.auth
from prometheus_client.core import CounterMetricFamily
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from streamer.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)
EVENTS = (zmq.EVENT_LISTENING | zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
          | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
          | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
          | zmq.EVENT_MONITOR_STOPPED)  # sent when the socket closes (only if asked): ends the thread
PROTOCOL_WHY = {
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: ("the client holds another server key",
                                            "the publisher's key is not this server key"),
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: ("the client does not use CurveZMQ",
                                                 "the publisher does not use CurveZMQ"),
}

_lock = threading.Lock()
_counts: dict[str, int] = {}  # socket label → failed handshakes over the process's life
_logs: dict[str, RateLimitedLog] = {}  # socket label → its rate-limited warning
_watches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # zmq socket → AuthWatch
_refused: dict[str, deque] = {}  # ZAP domain → addresses of the clients it refused, oldest first


class Authenticator(ThreadAuthenticator):
    """zmq.auth's ZAP handler that also notes the address of each client key it refuses."""

    peer = ""

    def handle_zap_message(self, msg):
        self.peer = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
        return super().handle_zap_message(msg)

    def allow_clients(self, domain: str, folder: str) -> None:
        """Accept the client public keys in ``folder`` on ``domain``; note each refusal."""
        self.configure_curve_callback(domain, _AllowedKeys(self, domain, folder))


class _AllowedKeys:
    """A credentials provider for zmq.auth: the keys of a folder, loaded once."""

    def __init__(self, auth: Authenticator, domain: str, folder: str):
        self.auth, self.domain = auth, domain
        self.keys = set(zmq.auth.load_certificates(folder))
        with _lock:
            _refused[domain] = deque(maxlen=64)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        with _lock:
            _refused[self.domain].append(self.auth.peer)
        return False


class AuthWatch:
    """The monitor of one CurveZMQ socket (a thread that ends when the socket closes)."""

    def __init__(self, sock: zmq.Socket, domain: str = ""):
        self.domain = domain  # a server's ZAP domain ("" on a client)
        self.role = "publisher" if sock.socket_type in (zmq.PUB, zmq.XPUB) else "subscriber"
        self.reason: str | None = None  # the latest failure, until a handshake succeeds
        self.endpoint = ""
        monitor = sock.get_monitor_socket(EVENTS)
        with _lock:
            _watches[sock] = self
        threading.Thread(target=self._run, args=(monitor,), name="curve-monitor",
                         daemon=True).start()

    def _run(self, monitor: zmq.Socket) -> None:
        try:
            while True:
                event = recv_monitor_message(monitor)
                if event["event"] == zmq.EVENT_MONITOR_STOPPED:
                    return
                self.on_event(event["event"], event["value"],
                              event["endpoint"].decode("utf-8", "replace"))
        except zmq.ZMQError:  # the context was terminated
            pass
        finally:
            monitor.close(linger=0)

    def on_event(self, kind: int, value: int, endpoint: str) -> None:
        self.endpoint = endpoint or self.endpoint
        label = f"{self.role} {self.endpoint}"
        if kind in (zmq.EVENT_LISTENING, zmq.EVENT_CONNECTED):
            with _lock:
                _counts.setdefault(label, 0)  # shown at 0 from the start
            return
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.reason = None
            return
        why = self._why(kind, value)
        if why is None:
            return
        with _lock:
            peer = _pop_refused(self.domain) if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH else ""
            self.reason = why
            _counts[label] = _counts.get(label, 0) + 1
            say = _logs.setdefault(label, RateLimitedLog(logger=log))
            say(logging.WARNING, "authentication failed on %s%s: %s", label,
                f" from {peer}" if peer else "", why)

    def _why(self, kind: int, value: int) -> str | None:
        server = bool(self.domain)
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return ("its client key is not in the allowed clients folder" if server else
                    f"the publisher refused this client key (ZAP status {value}): add its public "
                    "key to the publisher's allowed clients folder")
        if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            whys = PROTOCOL_WHY.get(value)
            return whys[not server] if whys else f"ZMTP protocol error {value:#x}"
        if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and not server:
            # what a wrong server key looks like from the client: the publisher just hangs up
            # (a publisher sees the same from a port scan, so it does not count these)
            return "the publisher dropped the handshake: is the server key the publisher's?"
        return None


def _pop_refused(domain: str) -> str:
    refused = _refused.get(domain)
    return refused.popleft() if refused else ""


def watch(sock: zmq.Socket, domain: str = "") -> AuthWatch:
    """Before bind or connect: count, log and remember ``sock``'s failed handshakes."""
    return AuthWatch(sock, domain)


def failure(sock: zmq.Socket) -> str | None:
    """``authentication failed on …: why`` while ``sock``'s latest handshake failed, else None."""
    with _lock:
        w = _watches.get(sock)
    if w is None or w.reason is None:
        return None
    return f"authentication failed on {w.role} {w.endpoint}: {w.reason}"


class AuthFailureCollector:
    """``streamer_auth_failures_total{stream,socket}`` for one stream's registry."""

    def __init__(self, stream: str):
        self.stream = stream

    def describe(self):
        yield CounterMetricFamily("streamer_auth_failures", "", labels=["stream", "socket"])

    def collect(self):
        family = CounterMetricFamily(
            "streamer_auth_failures", "CurveZMQ handshakes that failed (refused client key, "
            "another server key, not CurveZMQ), by socket", labels=["stream", "socket"])
        with _lock:
            counts = sorted(_counts.items())
        for label, n in counts:
            family.add_metric([self.stream, label], n)
        yield family


def raise_if_failed(sock: zmq.Socket) -> None:
    """SourceLost saying ``authentication failed`` when that is why ``sock`` gets nothing."""
    from streamer.frames import SourceLost

    if (why := failure(sock)) is not None:
        raise SourceLost(why)
