"""scripts/gpu_check's plumbing on the CPU: prepared references, import checks, a report per row."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"backend", "precision", "batch", "p50_ms", "p99_ms", "fps", "parity_ok", "max_abs_dprob"}


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepared(gpu_check, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prepared")
    assert gpu_check.main(["--prepare", "--no-wheels", "--models", "default", "--dir", str(folder)]) == 0
    return folder


def _run(gpu_check, prepared, out, *extra):
    return gpu_check.main(["--dry-run", "--models", "default", "--dir", str(prepared), "--out", str(out),
                           "--iters", "3", "--row-seconds", "0", *extra])


def test_dry_run_writes_the_report_after_every_row(gpu_check, prepared, tmp_path, monkeypatch):
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["models"]["default"]["checkpoint"].startswith("engines/default_model/")
    written = []
    real = gpu_check.write_report
    monkeypatch.setattr(gpu_check, "write_report", lambda r, out: (written.append(len(r["rows"])), real(r, out)))
    assert _run(gpu_check, prepared, tmp_path) == 0
    assert written == [1, 2]  # a timeout keeps every row done so far
    (report_path,) = tmp_path.glob("*-cpu-dry-run.json")
    report = json.loads(report_path.read_text())
    assert report["gpu"] == "cpu-dry-run" and [r["batch"] for r in report["rows"]] == [1, 8]
    for row in report["rows"]:
        assert ROW_KEYS <= set(row) and "error" not in row
        assert row["parity_ok"] and row["max_abs_dprob"] < 1e-4 and row["fps"] > 0
    assert "| default | torch | fp32 | False | 8 |" in report_path.with_suffix(".md").read_text()


def test_spent_budget_skips_rows_but_still_records_them(gpu_check, prepared, tmp_path):
    assert _run(gpu_check, prepared, tmp_path, "--budget", "0") == 0
    (report_path,) = tmp_path.glob("*.json")
    rows = json.loads(report_path.read_text())["rows"]
    assert len(rows) == 2 and all("time budget" in r["error"] and not r["parity_ok"] for r in rows)


def test_missing_pieces_are_one_line_each(gpu_check, prepared, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(gpu_check.REQUIRED, "no_such_module_a", "a piece")
    monkeypatch.setitem(gpu_check.REQUIRED, "no_such_module_b", "another")
    assert _run(gpu_check, prepared, tmp_path) == 2
    err = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("gpu_check: missing no_such_module_") for line in err) == 2
    assert not list(tmp_path.iterdir())


def test_without_gpu_or_prepared_folder_exits_with_a_clear_message(gpu_check, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 3
    assert "no CUDA GPU visible" in capsys.readouterr().err
    assert gpu_check.main(["--dry-run", "--dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "--prepare" in capsys.readouterr().err
    assert (ROOT / "scripts" / "gpu_check").stat().st_mode & 0o111
