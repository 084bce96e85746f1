"""Keyframes from a whole `streamer run` with the bundled model: on the simulated scanner every
region's best frame shows that region (the simulator's own labels), and a DICOM exam's keyframes
carry its spacing and go into its study; a bad keyframes option is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from engines.classes import REGIONS
from engines.simulator import LiveFeed
from streamer.cli import live_outputs, main
from streamer.sinks.keyframes_sink import spec_request

RUN = ["run", "--publish", "tcp://127.0.0.1:*", "--metrics-port", "0"]


@pytest.fixture
def with_keyframes(monkeypatch):
    """`streamer run` with a keyframes sink from a spec, as --keyframes adds one."""
    def use(spec: str) -> None:
        requests = live_outputs.sink_requests
        monkeypatch.setattr(live_outputs, "sink_requests",
                            lambda args, config: requests(args, config) + [spec_request(spec, config)])
    return use


def test_each_regions_best_frame_shows_that_region(tmp_path, with_keyframes):
    """15 s of sweep: the model scores the head 0.999 as it slides into view (frame 233, 38% of
    it in the fan, labelled absent); 10 s end just after it, with full views by a hair better."""
    with_keyframes(f"keyframes:{tmp_path},k=2,exam=sweep")
    assert main([*RUN, "--source", "sim:realtime=0,frames=450"]) == 0
    index = json.loads((tmp_path / "sweep" / "index.json").read_text())
    assert set(index["regions"]) == set(REGIONS) and index["source"]["kind"] == "sim"
    kept = {region: frames for region, frames in index["regions"].items() if frames}
    assert len(kept) >= 3, index["regions"]  # 15 s of sweep show most of the fetus
    feed = LiveFeed(seed=0)
    for region, frames in kept.items():
        assert len(frames) <= 2
        top = frames[0]
        assert feed.frame_at(top["seq"]).labels[REGIONS.index(region)] == 1, (region, top["seq"])
        assert top["score"] >= 0.5 and top["mm_per_px"] is None
        for r in frames:
            assert (tmp_path / "sweep" / r["crop"]).is_file()
            assert (tmp_path / "sweep" / r["overlay"]).is_file()
    files = {p.relative_to(tmp_path / "sweep").as_posix()
             for p in (tmp_path / "sweep").glob("*/*")}
    assert files == {r[key] for frames in kept.values() for r in frames for key in ("crop", "overlay")}


def test_a_dicom_exams_keyframes_join_its_study(tmp_path, with_keyframes):
    pydicom = pytest.importorskip("pydicom")
    from engines.simulator.dicom_export import simulated_cine, write_dicom

    cine = simulated_cine(60, seed=0)
    src = write_dicom(tmp_path / "loop.dcm", cine.frames, regions=cine.regions,
                      patient={"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.7",
                               "PatientID": "P-7", "PatientName": "Doe^Jane"})
    with_keyframes(f"keyframes:{tmp_path / 'out'},exam=e,dicom=1")
    assert main([*RUN, "--source", f"dicom:{src}"]) == 0
    index = json.loads((tmp_path / "out" / "e" / "index.json").read_text())
    kept = [r for frames in index["regions"].values() for r in frames]
    assert kept, "no keyframe in two seconds of sweep"
    assert index["source"] == {"kind": "dicom", "study_uid": "1.2.826.0.1.3680043.8.498.7"}
    for r in kept:
        assert r["mm_per_px"] == pytest.approx([10 * v for v in cine.regions[0].cm_per_px])
        ds = pydicom.dcmread(tmp_path / "out" / "e" / r["dicom"])
        assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.7" and ds.PatientID == "P-7"


def test_a_bad_keyframes_option_is_one_line(tmp_path, with_keyframes, capsys):
    with_keyframes(f"keyframes:{tmp_path},k=0")
    assert main([*RUN, "--source", "sim:realtime=0,frames=5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keyframes k must be in 1..100, got 0" in err[0], err
