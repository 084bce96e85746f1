"""Which host names a link may use unencrypted: loopback only, decided on the parsed address."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = ("localhost", "lo")


def is_local_host(host: str) -> bool:
    """A loopback IP address (127.0.0.0/8, ::1, written any way an IP parser reads it), or the
    names ``localhost`` and ``lo``. Other names are not taken on trust (``127.evil.example`` is a
    name, not an address): a remote name needs keys (or TLS) or ``--insecure``."""
    host = host.strip()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
