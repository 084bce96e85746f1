"""The default-model tables (docs/models.md) are generated from the recorded reports, not typed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tables():
    spec = importlib.util.spec_from_file_location("tables", ROOT / "scripts" / "default_model_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_shows_the_recorded_tables():
    mod = _tables()
    text = mod.tables()
    assert text.count("|---") >= 3  # simulated styles, OOD AUROC, real frames
    readme = (ROOT / "docs" / "models.md").read_text()
    for table in text.split("\n\n"):
        assert table in readme, table.splitlines()[0]


def test_collect_reads_eval_reports(tmp_path):
    mod = _tables()
    for model, acc in (("a", 0.5), ("b", 0.75)):
        d = tmp_path / model / "heldout"
        d.mkdir(parents=True)
        (d / "report.json").write_text(json.dumps(
            {"mean_accuracy": acc, "pointing_game": acc / 2, "frames": 4, "data": "sim:n=4"}))
    comp = mod.collect({"before": tmp_path / "a", "after": tmp_path / "b"},
                       {"before": "A", "after": "B"})
    row = comp["held-out style"]
    assert row["before"]["mean_accuracy"] == 0.5 and row["after"]["pointing_game"] == 0.375
    assert "before" not in comp["classic style"]
    table = mod.simulated_table(comp)
    assert table.splitlines()[0].startswith("| model: accuracy / pointing game | classic style (")
    assert "| A | – / – | – / – | 50.0 / 25.0 | – / – | 4 |" in table.splitlines()
    assert "| B | – / – | – / – | 75.0 / 37.5 | – / – | 4 |" in table.splitlines()


def test_add_puts_new_rows_after_the_recorded_ones(tmp_path):
    mod = _tables()
    for model, acc in (("a", 0.5), ("b", 0.75), ("c", 0.25)):
        d = tmp_path / model / "classic"
        d.mkdir(parents=True)
        (d / "report.json").write_text(json.dumps(
            {"mean_accuracy": acc, "pointing_game": acc, "frames": 4, "data": "sim:n=4"}))
    comp = mod.collect({"before": tmp_path / "a", "after": tmp_path / "b"}, {"before": "A", "after": "B"})
    once = mod.add(comp, {"C": tmp_path / "c"})
    twice = mod.add(once, {"A again": tmp_path / "a"})
    assert list(twice["models"].values()) == ["A", "B", "C", "A again"]
    assert twice["classic style"]["also0"]["mean_accuracy"] == 0.25
    assert twice["classic style"]["also1"]["mean_accuracy"] == 0.5
    assert "also0" not in comp["models"]  # the record it was given is left as it was
    rows = mod.simulated_table(twice).splitlines()
    assert rows[-2].startswith("| C | 25.0 / 25.0 |") and rows[-1].startswith("| A again | 50.0 / 50.0 |")


def test_live_accuracy_table_names_each_model_with_its_recorded_figures():
    mod = _tables()
    table = mod.live_table({"what": "sweeps", "results": [
        {"name": "new", "accuracy": 0.9512, "pointing_game": 0.9, "frames": 150},
        {"name": "old", "accuracy": 0.5, "pointing_game": 0.25, "frames": 150}]})
    assert "| new | 95.1 | 90.0 | 150 |" in table and "| old | 50.0 | 25.0 | 150 |" in table


def test_a_model_trained_in_stages_is_described_by_every_stage(tmp_path):
    mod = _tables()
    for name, epochs, lr in (("base", 3, 0.05), ("tune", 2, 0.01)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.json").write_text(json.dumps({
            "history": [{"epoch": i + 1, "lr": lr / (i + 1), "seconds": 60.0} for i in range(epochs)],
            "convergence_iterations": [4, 6], "unrolled_iterations": 8}))
    record = mod.stages_record([("classic", tmp_path / "base"), ("classic+train", tmp_path / "tune")])
    assert [(s["style"], s["epochs"], s["lr"]) for s in record["stages"]] == [
        ("classic", 3, [0.05, 0.016667]), ("classic+train", 2, [0.01, 0.005])]
    assert len(record["history"]) == 2  # the last stage's epochs, as its history.json has them
    line = mod.training_line(record)
    assert line.startswith("Training: 3 epochs on `style=classic` frames, then fine-tuned 2 epochs "
                           "on `style=classic+train` (lr 0.01 → 0.005); 5 minutes for the epochs")


def test_a_stage_that_widened_the_backbone_says_so(tmp_path):
    mod = _tables()
    for name, arch in (("base", "compact"), ("tune", "compact"), ("wide", "compact_wide")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.json").write_text(json.dumps({
            "arch": arch, "history": [{"epoch": 1, "lr": 0.01, "seconds": 60.0}],
            "convergence_iterations": [4], "unrolled_iterations": 6}))
    record = mod.stages_record([("classic", tmp_path / "base"), ("classic+train", tmp_path / "tune"),
                                ("classic+train", tmp_path / "wide")])
    assert [s["arch"] for s in record["stages"]] == ["compact", "compact", "compact_wide"]
    assert "(lr 0.01 → 0.01), then widened to `compact_wide`, 1 epochs on `style=classic+train`" \
        in mod.training_line(record)


def test_a_stage_on_frames_no_earlier_stage_saw_says_so(tmp_path):
    mod = _tables()
    specs = {"base": "sim:n=100,seed=1,style=classic", "tune": "sim:n=100,seed=1,style=classic+train",
             "fresh": "sim:n=20000,seed=21,style=classic+train"}
    for name, data in specs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.json").write_text(json.dumps({
            "data": data, "history": [{"epoch": 1, "lr": 0.01, "seconds": 60.0}]}))
    line = mod.training_line(mod.stages_record([(s, tmp_path / n) for s, n in (
        ("classic", "base"), ("classic+train", "tune"), ("classic+train", "fresh"))]))
    assert "then 1 epochs on `style=classic+train` (20,000 frames no earlier stage saw; lr 0.01" in line
    assert line.count("no earlier stage saw") == 1


def test_a_stage_trained_with_augmentation_says_so(tmp_path):
    mod = _tables()
    specs = {"base": ("sim:n=100,seed=1,style=classic", 0.0),
             "same": ("sim:n=100,seed=1,style=classic+train", 0.5),
             "fresh": ("sim:n=300,seed=41,style=classic+train", 1.0)}
    for name, (data, augment) in specs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.json").write_text(json.dumps({
            "data": data, "augment": augment, "history": [{"epoch": 1, "lr": 0.01, "seconds": 60.0}]}))
    record = mod.stages_record([(s, tmp_path / n) for s, n in (
        ("classic", "base"), ("classic+train", "same"), ("classic+train", "fresh"))])
    assert [s.get("augment") for s in record["stages"]] == [None, 0.5, 1.0]
    line = mod.training_line(record)
    assert "(photometric augmentation 0.5; lr 0.01" in line
    assert "(300 frames no earlier stage saw; photometric augmentation 1; lr 0.01" in line
