"""The remote backend's link security: TLS for ``grpcs://`` and the plaintext rule for ``grpc://``.

Frames are patient data. ``grpcs://`` verifies the server's certificate against a CA file
(``--tls-ca``; without one, the roots gRPC trusts by default) and, with ``--tls-cert`` and
``--tls-key``, presents a client certificate (mutual TLS). ``grpc://`` is plaintext: allowed to a
loopback address, elsewhere only with ``--insecure`` (then it warns), as for ZeroMQ.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engines.addresses import is_local_host
from engines.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkSecurity:
    tls: bool  # grpcs://
    ca: str = ""  # PEM CA bundle that signed the server's certificate
    cert: str = ""  # PEM client certificate (chain), for mutual TLS
    key: str = ""  # its PEM private key
    insecure: bool = False  # plaintext to a non-loopback server, knowingly

    def __post_init__(self):
        given = [f for f, v in (("--tls-ca", self.ca), ("--tls-cert", self.cert),
                                ("--tls-key", self.key)) if v]
        if given and not self.tls:
            raise UserError(f"{'/'.join(given)} need a grpcs:// server (TLS); the server is grpc://")
        if bool(self.cert) != bool(self.key):
            raise UserError("mutual TLS needs both --tls-cert (the client certificate) and "
                            "--tls-key (its private key)")
        for flag, path in (("--tls-ca", self.ca), ("--tls-cert", self.cert), ("--tls-key", self.key)):
            if path:
                read_pem(path, flag)

    def check_server(self, server: str, host: str) -> None:
        """Plaintext off loopback: one line, unless --insecure (then a warning)."""
        if self.tls or is_local_host(host):
            return
        if not self.insecure:
            raise UserError(f"refusing plaintext gRPC to {server}: frames are patient data; use "
                            "grpcs:// (TLS, with --tls-ca) or --insecure to send them unencrypted")
        log.warning("INSECURE: frames to %s travel in plaintext; anyone on the network can read "
                    "them", server)

    def credentials(self):
        """The channel's gRPC credentials (TLS only)."""
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca, "--tls-ca") if self.ca else None,
            private_key=read_pem(self.key, "--tls-key") if self.key else None,
            certificate_chain=read_pem(self.cert, "--tls-cert") if self.cert else None)

    def failure(self, server: str, message: str) -> str | None:
        """A clear line for a link that can never work as configured (a TLS handshake refused,
        TLS against plaintext or the reverse), from gRPC's message; None if it was not one (the
        server may then simply not be up yet)."""
        text = message.lower()
        if not self.tls:
            if "http1.x server" in text:
                return (f"{server} answered as an HTTP/1 server, not gRPC: a TLS port (then use "
                        "grpcs://) or the REST port?")
            return None
        ca = f"the CA in --tls-ca {self.ca}" if self.ca else "a CA this machine trusts (--tls-ca)"
        if "certificate_verify_failed" in text or "certificate verify failed" in text:
            return f"TLS to {server} refused: its certificate is not signed by {ca}"
        if "peer name" in text or "not in peer certificate" in text:
            return f"TLS to {server} refused: its certificate does not name that host"
        if "wrong_version_number" in text or "packet_length_too_long" in text:
            return f"TLS to {server} failed: it does not speak TLS (a plaintext grpc:// server?)"
        if "status: 400" in text:  # a TLS terminator (nginx) refusing the client's certificate
            if not self.cert:
                return (f"TLS to {server} refused: the server requires a client certificate "
                        "(mutual TLS: --tls-cert and --tls-key)")
            return (f"TLS to {server} refused the client certificate --tls-cert {self.cert} (not "
                    "signed by a CA the server trusts, or expired)")
        return None

    def hint(self, message: str) -> str:
        """What a connection the server closed during setup may mean ("" when nothing to add)."""
        if "socket closed" not in message.lower():
            return ""
        if self.tls and not self.cert:
            return "does the server require a client certificate (--tls-cert, --tls-key)?"
        return "" if self.tls else "does the server expect TLS (grpcs://)?"


def read_pem(path: str, flag: str) -> bytes:
    """The file's bytes, or one line saying which flag names a missing or non-PEM file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    if b"-----BEGIN " not in data:
        raise UserError(f"{flag} {path} is not a PEM file (-----BEGIN ...)")
    return data
