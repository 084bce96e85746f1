"""The model card says what the run did, and the README's adaptation table is the recorded runs."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from engines.adapt import card
from engines.adapt.run import AdaptConfig

ROOT = Path(__file__).resolve().parents[2]


def state(best_epoch: int, stopped: bool) -> dict:
    history = [{"epoch": e, "loss": None if e == 0 else 0.3, "val_mean_accuracy": 0.9,
                "val_loss": 0.2, "lr": 0.005, "seconds": 3.0} for e in range(3)]
    evals = {"validation": {"frames": 20, "mean_accuracy": 0.9, "per_class": {"head": 0.95}},
             "in_style": {"frames": 8, "mean_accuracy": 0.99, "pointing_game": 0.97,
                          "per_class": {"head": 1.0}}}
    return {"split": {"train_loops": ["a.dcm", "b.dcm"], "val_loops": ["c.dcm"],
                      "train_frames": 40, "val_frames": 20},
            "val_positives": {"head": 7},
            "steps": {"before": {**evals, "unfamiliar": {"validation": 1.0}, "seconds": 5},
                      "train": {"epochs": 2, "best_epoch": best_epoch, "stopped_early": stopped,
                                "rehearsal_frames": 600, "history": history, "seconds": 60},
                      "ood": {"method": "mahalanobis", "limit": 0.99, "fit_frames": 40,
                              "flagged": {"validation": 0.05}, "seconds": 1},
                      "int8": {"target": "tensorrt", "method": "entropy", "calibration_frames": 40,
                               "held_out_frames": 20, "decision_agreement": 1.0,
                               "max_abs_dprob": 0.01, "validation": {"mean_accuracy": 0.9},
                               "seconds": 9},
                      "after": evals}}


def test_the_card_says_when_no_epoch_beat_the_starting_model_and_how_familiar_frames_were():
    cfg = AdaptConfig(out="models/bay 1", data="dicom:/exams", rehearse="sim:n=600", patience=4)
    inputs = SimpleNamespace(start=SimpleNamespace(cfg=SimpleNamespace(classes=("head",))),
                             commands=None, read_seconds=10.0)
    text = card.markdown(cfg, state(0, True), inputs)
    assert "no epoch scored better on validation than the starting model (epoch 0)" in text
    assert "Stopped early after epoch 2: none of the last 4 scored better" in text
    assert "600 frames of `sim:n=600` mixed in" in text
    assert "validation frames 5.0% (the starting model's statistics: 100.0%)" in text
    assert "streamer run --model 'models/bay 1'" in text  # quoted: the line runs as written
    assert "85 s in all: reading the frames 10 s, before 5 s" in text
    assert "epoch 1 scored best on validation" in card.markdown(cfg, state(1, False), inputs)


def test_readme_adaptation_table_is_the_recorded_runs():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import adapt_new_scanner as bench

    readme = (ROOT / "README.md").read_text()
    assert bench.BEGIN in readme and bench.END in readme, "README lost its adapt-table markers"
    block = readme.split(bench.BEGIN, 1)[1].split(bench.END, 1)[0].strip()
    records = bench.records()
    assert records and block == bench.markdown(records)
    for r in records:  # the verdicts are the record's own numbers, not typed
        assert r["targets"] == bench.verdict(r)
        assert json.loads(json.dumps(r)) == r
