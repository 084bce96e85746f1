"""Test certificates made with the openssl CLI: a CA, a server certificate for localhost and
127.0.0.1, a client certificate for mutual TLS (both signed by the CA), and a second CA that
signed nothing here (the wrong CA)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _ca(out: Path, name: str) -> tuple[Path, Path]:
    cert, key = out / f"{name}.crt", out / f"{name}.key"
    _openssl("req", "-x509", *CURVE, "-keyout", key, "-out", cert, "-days", "2", "-subj",
             f"/CN=sonostream test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def _leaf(out: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (out / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    ext.write_text(f"basicConstraints=CA:FALSE\n{extensions}\n")
    _openssl("req", *CURVE, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


def make_certs(out: Path) -> Certs:
    if shutil.which("openssl") is None:
        import pytest

        pytest.skip("needs the openssl command (Debian's openssl package) to make test certificates")
    out.mkdir(parents=True, exist_ok=True)
    ca = _ca(out, "ca")
    server = _leaf(out, "localhost", ca, "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                         "extendedKeyUsage=serverAuth")
    client = _leaf(out, "scanner-1", ca, "extendedKeyUsage=clientAuth")
    other_ca = _ca(out, "other-ca")
    return Certs(ca[0], *server, *client, other_ca[0])
