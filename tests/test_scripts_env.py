"""Which Python the setup, test and demo scripts use, and when setup lets pip be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shell(snippet: str, **env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}
    out = subprocess.run(["bash", "-c", f"cd {ROOT} && source scripts/python_env.sh && {snippet}"],
                         env={**base, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_python_is_the_given_one_or_the_active_virtualenv():
    assert shell("sonostream_python", PYTHON=sys.executable) == sys.executable
    assert shell("sonostream_python", VIRTUAL_ENV="/opt/venv") == "/opt/venv/bin/python"


def test_setup_stamp_changes_with_the_mode_and_lives_in_the_interpreter():
    dev = shell('PY=$PYTHON; sonostream_stamp dev', PYTHON=sys.executable)
    runtime = shell('PY=$PYTHON; sonostream_stamp runtime', PYTHON=sys.executable)
    assert dev != runtime and Path(dev).parent == Path(sys.prefix)


def test_setup_skips_pip_when_nothing_changed(tmp_path):
    stamp = Path(shell('PY=$PYTHON; sonostream_stamp runtime', PYTHON=sys.executable))
    existed = stamp.exists()
    stamp.touch()
    try:
        out = subprocess.run([str(ROOT / "scripts" / "setup")], capture_output=True, text=True,
                             env={**os.environ, "PYTHON": sys.executable}, timeout=120)
        assert out.returncode == 0 and "nothing changed; skipping pip" in out.stdout, out.stdout
    finally:
        if not existed:
            stamp.unlink()
