"""Which Python the setup, test and demo scripts use, and when setup lets pip be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def _setup_torch_args(tmp_path, gpu: bool, **env) -> list[str]:
    """The pip arguments scripts/setup --dev gives for torch, with a stand-in Python that has
    no torch and records every pip call, and nvidia-smi present or not on the PATH."""
    tmp_path.mkdir(exist_ok=True)
    log = tmp_path / "pip.log"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
if [[ "$1" == -c ]]; then
  case "$2" in *"import torch"*) exit 1;; *sys.prefix*) echo {tmp_path};; esac; exit 0
fi
if [[ "$1 $2" == "-m pip" ]]; then echo "$@" >> {log}; fi
""")
    fake.chmod(0o755)
    bins = tmp_path / "bin"
    bins.mkdir()
    path = [d for d in os.environ["PATH"].split(os.pathsep)  # no real nvidia-smi either way
            if d and not (Path(d) / "nvidia-smi").exists()]
    if gpu:
        (bins / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
        (bins / "nvidia-smi").chmod(0o755)
    out = subprocess.run([str(ROOT / "scripts" / "setup"), "--dev"], capture_output=True,
                         text=True, timeout=60,
                         env={"PATH": os.pathsep.join([str(bins), *path]), "PYTHON": str(fake),
                              "HOME": str(tmp_path), **env})
    assert out.returncode == 0, out.stdout + out.stderr
    return [line.split()[3:] for line in log.read_text().splitlines() if "torch" in line]


def test_setup_takes_the_cpu_build_of_torch_without_an_nvidia_gpu(tmp_path):
    import platform

    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("the CPU build is chosen on Linux x86-64, where PyPI's torch is the CUDA one")
    (args,) = _setup_torch_args(tmp_path, gpu=False)
    assert args[-1] == "torch==2.13.0+cpu" and "--extra-index-url" in args


def test_setup_keeps_plain_torch_with_a_gpu_or_when_told(tmp_path):
    for args in (*_setup_torch_args(tmp_path / "gpu", gpu=True),
                 *_setup_torch_args(tmp_path / "told", gpu=False, TORCH_SPEC="torch==2.13.0")):
        assert args[-1] == "torch==2.13.0" and "--extra-index-url" not in args
