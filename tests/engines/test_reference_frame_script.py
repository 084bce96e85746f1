"""scripts/reference_frame.py: real frames through the live path, with the OOD signal recorded."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2

from engines.simulator import ScannerSimulator, SimConfig

ROOT = Path(__file__).resolve().parents[2]


def test_sector_frame_goes_through_the_live_path_with_ood(tmp_path, monkeypatch):
    frame = ScannerSimulator(SimConfig(seed=21, style="classic")).frame(3)
    png = tmp_path / "sector.png"
    cv2.imwrite(str(png), frame.image)
    spec = importlib.util.spec_from_file_location("ref", ROOT / "scripts" / "reference_frame.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["reference_frame.py", "--frame", str(png), "--form", "sector",
                                      "--out", str(out)])
    assert mod.main() == 0
    rec = json.loads((out / "reference_frames.json").read_text())
    r = rec["frames"][0]
    assert r["form"] == "sector" and "live path" in r["path"] and "PolarCrop" in r["path"]
    assert 0.0 <= r["ood"] <= 1.0 and isinstance(r["familiar"], bool)
    assert set(r["probabilities"]) == {"head", "spine", "thorax", "abdomen", "limbs", "placenta"}
    assert r["present"] == [c for c, p in r["probabilities"].items() if p >= 0.5]
    assert (out / "sector_maps.png").is_file()
    tables = importlib.util.spec_from_file_location("tables", ROOT / "scripts" / "default_model_tables.py")
    tmod = importlib.util.module_from_spec(tables)
    tables.loader.exec_module(tmod)
    assert "| sector.png (sector; " in tmod.reference_table({"m": rec})  # the README's table of it
