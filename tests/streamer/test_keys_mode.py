"""`streamer keys` under umask 000: no secret key file ever exists readable by group or others
(not even between its creation and a later chmod), the folders are 0700, and the keys work."""

from __future__ import annotations

import builtins
import os
import stat

import pytest
import zmq.auth

from streamer.cli import main


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def created_modes(monkeypatch):
    """(name, mode) of every file the keys command creates, read from the open descriptor right
    after creation, through ``open`` (how zmq.auth writes) or ``os.open``."""
    seen = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if any(c in mode for c in "wxa") and isinstance(file, (str, os.PathLike)):
            seen.append((os.path.basename(file), stat.S_IMODE(os.fstat(f.fileno()).st_mode)))
        return f

    def spy_os_open(path, flags, mode=0o777, *args, **kwargs):
        fd = real_os_open(path, flags, mode, *args, **kwargs)
        if flags & os.O_CREAT:
            seen.append((os.path.basename(path), stat.S_IMODE(os.fstat(fd).st_mode)))
        return fd

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    return seen


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_never_readable_by_others_and_folders_are_private(tmp_path, umask_000,
                                                                      created_modes, capsys):
    out = tmp_path / "keys"
    assert main(["keys", "--out", str(out)]) == 0
    secrets = [(name, m) for name, m in created_modes if "secret" in name]
    assert len(secrets) >= 2  # both secret files were seen being created
    assert [(name, oct(m)) for name, m in secrets if m & 0o077] == []  # old code: 0o666
    assert mode(out) == 0o700 and mode(out / "allowed_clients") == 0o700  # old code: 0o777
    for name in ("server.key_secret", "client.key_secret"):
        assert mode(out / name) == 0o600
    for public in (out / "server.key", out / "client.key", out / "allowed_clients" / "client.key"):
        assert mode(public) & 0o022 == 0  # nobody else can swap a public key either
    assert sorted(p.name for p in out.iterdir()) == ["allowed_clients", "client.key",
                                                      "client.key_secret", "server.key",
                                                      "server.key_secret"]  # no temp files left
    server_public, server_secret = zmq.auth.load_certificate(out / "server.key_secret")
    assert zmq.auth.load_certificate(out / "server.key") == (server_public, None)
    assert zmq.auth.load_certificate(out / "allowed_clients" / "client.key")[0] == \
        zmq.auth.load_certificate(out / "client.key_secret")[0]
    assert len(server_secret) == 40  # Z85 of 32 bytes



def test_a_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["keys", "--out", str(tmp_path / "file" / "keys")]) == 2  # old code: traceback, 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write keys to" in err and "Not a directory" in err
