"""streamer bench: the quick run's JSON and plot, a clear error on bad input, and the FLOP counter
against hand-computed graphs. No timed assertions: the figures depend on the machine."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engines.defaults import DEFAULT_CHECKPOINT, DEFAULT_ONNX
from streamer.bench.flops import count_flops
from streamer.bench.runner import TARGETS
from streamer.cli import main
from streamer.frames import PARTS

TOP_LEVEL = {"machine", "model_only", "end_to_end", "baseline", "speedup_vs_baseline", "targets"}


@pytest.fixture
def model_args(request):
    """The bundled model when present, else the random compact model (ONNX + checkpoint)."""
    if DEFAULT_ONNX.is_file() and DEFAULT_CHECKPOINT.is_file():
        return []
    onnx_path = request.getfixturevalue("compact_onnx")
    checkpoint = request.getfixturevalue("compact_checkpoint")
    return ["--model", str(onnx_path), "--checkpoint", str(checkpoint)]


def _positive_latency(lat: dict) -> None:
    assert lat["count"] > 0
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert len(lat["quantiles"]) == 101


def test_quick_bench_writes_json_and_plot(tmp_path, model_args, capsys):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    assert main(["bench", "--quick", *model_args, "--json", str(out), "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "saturation" in printed and "SMOKE RUN" in printed  # --quick never gives a verdict
    result = json.loads(out.read_text())
    assert set(result) == TOP_LEVEL
    assert png.stat().st_size > 10_000

    machine = result["machine"]
    assert machine["cores_logical"] >= 1 and "peak_gflops" not in machine
    assert machine["bench"]["onnxruntime_threads"]["candidates"] == [0]
    assert "onnxruntime" in machine["versions"]

    model = result["model_only"]
    assert model["model"]["flops_per_frame"] > 0
    assert {(r["backend"], r["batch"]) for r in model["runs"]} == {("onnxruntime", 1), ("torch", 1)}
    for run in model["runs"]:
        _positive_latency(run["latency_ms"])
        assert run["throughput_fps"] > 0 and run["peak_rss_mb"] > 0 and run["gflops"] > 0
        assert run["threads"]

    runs = result["end_to_end"]["runs"]
    assert [r["realtime"] for r in runs] == [True, False] and runs[0]["fps"] == 30
    for run in runs:
        c = run["counts"]
        assert 0 < c["processed"] <= c["captured"]
        assert c["captured"] == c["processed"] + c["dropped"] + c["invalid"]
        for stage in ("capture_to_publish", "inference", "capture_to_sent"):
            _positive_latency(run["latency_ms"][stage])
        means = run["stages_ms"]["mean"]  # the parts add up to capture→publish
        assert set(means) == set(PARTS)
        assert sum(means.values()) == pytest.approx(run["stages_ms"]["mean_capture_to_publish"],
                                                    abs=1e-3)
        assert run["overhead_vs_model_ms_p50"] is not None and run["batches"]
        assert run["throughput_fps"] > 0 and run["cpu"]["cpu_s"] > 0

    base = result["baseline"]
    assert base["threads"] == 1 and base["frames"] > 0 and base["throughput_fps"] > 0
    assert base["engine"].startswith("torch eager")
    _positive_latency(base["latency_ms"]["capture_to_publish"])
    saturation = next(r for r in runs if not r["realtime"])  # the ratio of the two, measured
    assert result["speedup_vs_baseline"] == pytest.approx(
        saturation["throughput_fps"] / base["throughput_fps"], abs=1e-3)
    targets = result["targets"]
    assert targets["smoke"] and all(targets[k]["met"] is None for k in TARGETS)
    paced = model["paced_at_live_rate"]  # the model alone, one call per 30 fps interval
    assert paced["paced_fps"] == 30 and paced["calls"] >= 2
    # really paced: n calls, one per 1/30 s interval, span at least n - 2 intervals between the
    # first and the last completion even if the first call ended a whole interval late (a loaded
    # machine), so no more than 30 (n - 1) / (n - 2) a second; unpaced they run at 1/latency,
    # hundreds a second (8 calls: 35 against 300+)
    n = paced["calls"]
    if n >= 3:
        assert paced["wall_throughput_fps"] <= 30 * (n - 1) / (n - 2)
    assert targets["model_alone_paced"]["p50"] == paced["latency_ms"]["p50"]
    assert targets["model_alone_paced"]["inference_in_pipeline_ratio"] == pytest.approx(
        runs[0]["latency_ms"]["inference"]["p50"] / paced["latency_ms"]["p50"], abs=1e-3)
    assert "model alone at 30 fps" in printed


def test_missing_model_is_one_clear_error(tmp_path, capsys):
    assert main(["bench", "--quick", "--model", str(tmp_path / "nope.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model file not found" in err[0]


def test_a_checkpoint_as_the_model_is_one_clear_error(tmp_path, capsys, compact_checkpoint):
    """Not an internal error (a protobuf parse deep in the FLOP count): say what to give."""
    assert main(["bench", "--quick", "--model", str(compact_checkpoint)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a PyTorch checkpoint, not an ONNX model" in err[0]
    assert "streamer export --checkpoint" in err[0] and "--checkpoint" in err[0]


def _single_conv(path, *, stride: int, group: int = 1, batch="N"):
    """X[batch,4,8,8] → Conv(W[6, 4/group, 3, 3], pad 1, stride) → Y."""
    w = numpy_helper.from_array(np.ones((6, 4 // group, 3, 3), np.float32), "W")
    node = helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1], strides=[stride, stride],
                            group=group)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                              [batch, 4, 8, 8])], [helper.make_tensor_value_info("Y", TensorProto.FLOAT,
                              None)], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("stride, group, expected", [
    (1, 1, 2 * 6 * 8 * 8 * (4 * 3 * 3)),  # 6 maps × 64 positions × a 4×3×3 window, 2 FLOPs per MAC
    (2, 1, 2 * 6 * 4 * 4 * (4 * 3 * 3)),  # stride 2: a 4×4 output
    (1, 2, 2 * 6 * 8 * 8 * (2 * 3 * 3)),  # two groups: each map sees half the channels
])
def test_flops_of_a_single_conv(tmp_path, stride, group, expected):
    flops = count_flops(_single_conv(tmp_path / "conv.onnx", stride=stride, group=group))
    assert flops == {"total": expected, "by_op": {"Conv": expected}, "uncounted": []}


def test_flops_of_matmul_and_gemm(tmp_path):
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, 5, 7])
    b = numpy_helper.from_array(np.ones((7, 3), np.float32), "B")
    c = numpy_helper.from_array(np.ones((3, 2), np.float32), "C")
    nodes = [helper.make_node("MatMul", ["A", "B"], ["AB"]),
             helper.make_node("Reshape", ["AB", "shape"], ["R"]),
             helper.make_node("Gemm", ["R", "C"], ["Y"])]
    shape = numpy_helper.from_array(np.array([5, 3], np.int64), "shape")
    graph = helper.make_graph(nodes, "mm", [a], [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              [b, c, shape])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert count_flops(path)["by_op"] == {"MatMul": 2 * 5 * 7 * 3, "Gemm": 2 * 5 * 3 * 2}


def _run(label, fps, p50, p99, infer_p50, throughput):
    return {"label": label, "fps": fps, "realtime": fps is not None, "throughput_fps": throughput,
            "latency_ms": {"capture_to_publish": {"p50": p50, "p99": p99},
                           "inference": {"p50": infer_p50}}}


@pytest.mark.parametrize("p50, p99, infer, sat, met", [
    (2.9, 7.9, 2.2, 3.1, {"overhead_p50_ms": True, "overhead_p99_ms": True,
                          "saturation_x_baseline": True, "inference_in_pipeline_ratio": True}),
    (3.1, 8.1, 2.4, 2.9, {"overhead_p50_ms": False, "overhead_p99_ms": False,
                          "saturation_x_baseline": False, "inference_in_pipeline_ratio": False}),
])
def test_targets_are_judged_against_the_model_alone_in_the_same_run(p50, p99, infer, sat, met):
    """Model alone p50 2 ms, p99 5 ms: overhead goals 1 ms / 3 ms, inference within 15%."""
    from pathlib import Path

    from streamer.bench.plan import BenchPlan
    from streamer.bench.runner import targets

    alone = {"latency_ms": {"p50": 2.0, "p99": 5.0}, "threads_requested": 1}
    e2e = [_run("30 fps", 30.0, p50, p99, infer, 30.0), _run("saturation", None, 9, 9, 9, 300)]
    t = targets(BenchPlan(Path("m.onnx")), e2e, alone, sat)
    assert {k: t[k]["met"] for k in TARGETS} == met
    assert t["overhead_p50_ms"]["value"] == pytest.approx(p50 - 2.0)


def test_readme_table_is_written_from_the_recorded_json(tmp_path, model_args):
    """The README's table comes from a bench JSON, between its markers, nothing else touched."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "readme_table", Path(__file__).parents[2] / "benchmarks" / "readme_table.py")
    readme_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readme_table)
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", *model_args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{readme_table.BEGIN}\nold table\n{readme_table.END}\nafter\n")
    assert readme_table.main([str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    saturation = next(r for r in result["end_to_end"]["runs"] if not r["realtime"])
    assert f"| {saturation['throughput_fps']:.0f} |" in text  # the figure, from the JSON
    assert "smoke run" in text


def test_spin_reaches_every_backend_the_bench_opens(tmp_path, model_args):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--spin", *model_args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert all(r["backend"]["spin"] is True for r in result["end_to_end"]["runs"])
    assert result["model_only"]["paced_at_live_rate"]["spin"] is True


def test_saturation_bound_is_the_fastest_model_alone_run_at_the_pipelines_precision():
    from streamer.bench.runner import saturation_bound

    sat = {**_run("saturation", None, 9, 9, 9, 300),
           "backend": {"backend": "onnxruntime", "precision": "fp32"}}
    model = [{"label": "ort fp32 b1", "backend": "onnxruntime", "precision": "fp32", "throughput_fps": 500},
             {"label": "ort fp32 b8", "backend": "onnxruntime", "precision": "fp32", "throughput_fps": 540},
             {"label": "ort int8 b8", "backend": "onnxruntime", "precision": "int8", "throughput_fps": 700},
             {"label": "torch fp32 b8", "backend": "torch", "precision": "fp32", "throughput_fps": 600}]
    bound = saturation_bound(model, [_run("30 fps", 30.0, 5, 8, 3, 30), sat], {"throughput_fps": 180})
    assert (bound["run"], bound["model_alone_fps"], bound["x_baseline"]) == ("ort fp32 b8", 540, 3.0)
    assert saturation_bound(model[2:3], [sat], {"throughput_fps": 180}) is None  # no run to bound by


def test_paced_calls_after_a_late_one_do_not_burst(monkeypatch):
    """A call that overruns its frame interval is followed by one call at once (the frame that came
    meanwhile), then the pacing resumes: never a run of back-to-back calls to catch up, which
    would time warm calls as if they were paced ones."""
    import time
    from pathlib import Path
    from types import SimpleNamespace

    import engines.backends
    from streamer.bench.model_only import run_model
    from streamer.bench.plan import BenchPlan, ModelRun

    starts = []

    class Slow:  # the first timed call takes five frame intervals
        name, options, last_inference_s = "fake", SimpleNamespace(threads=0), 0.0
        info = SimpleNamespace(input_size=32)

        def open(self):
            return self

        def infer(self, x):
            starts.append(time.perf_counter())
            time.sleep(0.1 if len(starts) == 2 else 0.001)
            self.last_inference_s = time.perf_counter() - starts[-1]

        def describe(self):
            return {}

        def close(self):
            pass

    monkeypatch.setattr(engines.backends, "create_backend", lambda *a, **k: Slow())
    plan = BenchPlan(Path("m.onnx"), duration_s=10.0, frames=8, warmup=1)
    run_model(ModelRun("fake", "fp32", Path("m.onnx"), 1), plan, pace_fps=50)
    gaps = np.diff(starts[1:])  # the timed calls (after the warm-up)
    assert gaps[0] >= 0.1  # the late one
    assert sum(g < 0.01 for g in gaps) <= 1  # at most one call straight after it


# The report's wording and plot on made-up figures (no timing): a user read a negative overhead
# reported as "goal met", a paced row's frames/s ratio as a slow-down, and overlapping tick labels.

def _lat(p50, spread=1.0):
    """A latency summary whose quantiles run from p50 / spread to p50 * spread."""
    quantiles = [p50 * spread ** (2 * q / 100 - 1) for q in range(101)]
    return {"p50": p50, "p90": quantiles[90], "p99": quantiles[99], "max": quantiles[100],
            "mean": p50, "quantiles": quantiles}


def _e2e_run(label, fps, p50, throughput, spread=1.5):
    parts = dict.fromkeys(PARTS, p50 / len(PARTS))
    return {"label": label, "fps": fps, "realtime": fps is not None, "throughput_fps": throughput,
            "counts": {"captured": 300, "processed": 300, "dropped": 0, "invalid": 0},
            "latency_ms": {"capture_to_publish": _lat(p50, spread), "inference": _lat(p50 / 2),
                           "capture_to_sent": _lat(p50, spread)},
            "cpu": {"cpu_cores_busy": 1.0}, "batches": {"1": 300},
            "backend": {"backend": "onnxruntime", "precision": "fp32"},
            "stages_ms": {"p50": parts, "mean": parts, "mean_capture_to_publish": p50}}


def _fake_result(paced_p50=5.0, paced_fps=30.0, alone_p50=30.0):
    """A full run's result dict, through the runner's own assembly and target logic."""
    from pathlib import Path

    from streamer.bench.plan import BenchPlan
    from streamer.bench.runner import assemble

    base = {"engine": "torch eager fp32, 1 thread", "frames": 300, "throughput_fps": 52.0,
            "cpu": {"cpu_cores_busy": 1.0},
            "latency_ms": {"capture_to_publish": _lat(19.0, 1.3), "inference": _lat(15.0),
                           "preprocess": _lat(3.0), "postprocess": _lat(0.5), "publish": _lat(0.1)}}
    model = {"label": "onnxruntime fp32 b1", "backend": "onnxruntime", "precision": "fp32", "batch": 1,
             "latency_ms": _lat(alone_p50, 1.2), "latency_per_frame_ms_p50": alone_p50,
             "throughput_fps": 1000 / alone_p50, "rss_growth_mb": 40.0, "threads_requested": 0}
    e2e = [_e2e_run(f"{paced_fps:g} fps", paced_fps, paced_p50, paced_fps - 0.2),
           _e2e_run("saturation", None, 60.0, 150.0, spread=1.4)]
    host = {"cpu": "Test CPU", "cores_usable": 2, "gpu": None, "load_average_at_start": [0.1, 0.1, 0.1]}
    flops = {"total": 361_000_000, "by_op": {}, "uncounted": []}
    return assemble(BenchPlan(Path("m.onnx")), host, flops, [model], e2e, base, standalone=model)


def _target_line(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(label))


def test_a_negative_overhead_is_noise_never_a_goal_met():
    """End to end 5 ms against the model alone's 30 ms: -25 ms of "overhead" cannot be; the
    report says noise and gives no verdict, in the JSON and the text."""
    from streamer.bench.report import table

    result = _fake_result(paced_p50=5.0, alone_p50=29.974)
    row = result["targets"]["overhead_p50_ms"]
    assert row["value"] == pytest.approx(-24.974) and row["met"] is None and "noise" in row["noise"]
    line = _target_line(table(result), "overhead p50")
    assert "-24.974" in line and "measurement noise" in line and not line.endswith(" met")
    assert "below zero, the end-to-end p50 came out under the model alone's" in table(result)


def test_an_older_json_with_a_negative_overhead_marked_met_reads_as_noise():
    from streamer.bench.report import target_verdict

    noise = target_verdict("overhead_p99_ms", {"value": -0.5, "goal": 3.0, "met": True})
    assert "measurement noise" in noise and "met" not in noise.replace("measurement", "")
    assert target_verdict("overhead_p50_ms", {"value": 0.4, "goal": 1.0, "met": True}) == "met"
    assert target_verdict("saturation_x_baseline", {"value": 2.0, "goal": 3.0, "met": False}) == "NOT met"


def test_paced_rows_show_latency_against_the_frame_interval_not_a_speed_up():
    """A 30 fps row runs at 30 frames/s whatever the engine: 29.8 / 52 = 0.58x is no slow-down.
    Only the saturation row (both flat out) gets a speed-up; the paced one its p50 against 33.3 ms."""
    from streamer.bench.report import table

    result = _fake_result(paced_p50=5.0)
    paced, saturation = result["end_to_end"]["runs"]
    assert paced["vs_baseline"]["throughput"] is None  # no ratio in the JSON either
    assert saturation["vs_baseline"]["throughput"] == pytest.approx(150 / 52, abs=1e-3)
    text = table(result)
    row = _target_line(text, "30 fps")
    assert "0.57x" not in row and "0.58x" not in row and row.split()[-4:] == ["paced", "15%", "of", "33.3"]
    assert _target_line(text, "saturation ").split()[-2:] == ["2.88x", "-"]
    assert "frames/s is no speed-up" in text and "p50 of frame" in text


def _drawn_tick_labels(axis) -> list:
    """The tick labels matplotlib draws: with text, at a tick inside the axis' view."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1 for t in ticks if lo <= t.get_loc() <= hi and t.label1.get_visible()
            and t.label1.get_text()]


def _overlaps(named: dict) -> list:
    """The pairs of names whose boxes overlap."""
    items = list(named.items())
    return [(a, b) for i, (a, box) in enumerate(items) for b, other in items[i + 1:] if box.overlaps(other)]


@pytest.mark.parametrize("paced_p50, alone_p50", [(4.0, 1.7), (5.0, 3.0), (2.0, 1.9)])
def test_plot_labels_do_not_overlap(paced_p50, alone_p50):
    """Every tick label apart from its neighbours, and no panel's labels inside another panel
    (latency spans from 4-90 ms, as in a --quick run, to under one decade)."""
    from streamer.bench.report import figure

    fig = figure(_fake_result(paced_p50=paced_p50, alone_p50=alone_p50))
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    for ax in fig.axes[:4]:
        for axis in (ax.xaxis, ax.yaxis):
            labels = _drawn_tick_labels(axis)
            assert len(labels) >= 2
            assert not _overlaps({f"{t.get_text()} @{t.get_position()}": t.get_window_extent(renderer)
                                  for t in labels})
    assert not _overlaps({ax.get_title(): ax.get_tightbbox(renderer) for ax in fig.axes[:4]})


# Many streams, INT8 in the pipeline and the goals against the bounds the run measured.

def test_streams_curve_in_the_json_and_its_plot(tmp_path, model_args, capsys):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    assert main(["bench", "--quick", "--streams", "2,1", *model_args, "--json", str(out),
                 "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "most streams held" in printed and "targets against the bounds" in printed
    result = json.loads(out.read_text())
    section = result["streams"]
    assert [p["streams"] for p in section["curve"]] == [1, 2]
    for point in section["curve"]:
        assert set(point["per_stream"]) == {f"s{i + 1}" for i in range(point["streams"])}
        for row in point["per_stream"].values():
            assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
            assert row["counts"]["processed"] > 0
        assert point["p99_worst_ms"] == max(r["latency_ms"]["p99"] for r in point["per_stream"].values())
        assert point["held"] == (point["p99_worst_ms"] < 33 and point["dropped"] == 0)
    bound = result["targets"]["saturation_bound"]["model_alone_fps"]
    assert section["bound_streams"] == pytest.approx(bound / 30, abs=0.01)
    assert section["held_x_bound"] == pytest.approx(section["held"] / (bound / 30), abs=1e-3)
    rows = result["targets"]["against_bounds"]
    assert set(rows) == {"saturation_x_bound", "overhead_vs_paced_p50_ms", "p99_x_p50",
                         "streams_x_bound"} and all(r["met"] is None for r in rows.values())
    assert (tmp_path / "bench-streams.png").stat().st_size > 10_000


def test_the_streams_curve_is_refined_between_held_and_not_held():
    from pathlib import Path

    from streamer.bench.plan import BenchPlan
    from streamer.bench.streams import curve

    measured = []

    def measure(n):
        measured.append(n)
        return {"streams": n, "held": n <= 9}

    points = curve(BenchPlan(Path("m.onnx"), streams=(16, 1, 4)), measure, refine=2)
    assert measured == [1, 4, 16, 10, 7]  # the list, then halfway between 4 and 16, then 4 and 10
    assert [p["streams"] for p in points] == [1, 4, 7, 10, 16]


def test_int8_runs_through_the_pipeline_as_its_own_rows(tmp_path, model_args):
    import numpy as np

    from calibration.int8 import quantize_int8

    onnx_path = model_args[1] if model_args else str(DEFAULT_ONNX)
    frames = np.random.default_rng(0).random((8, 1, 224, 224)).astype(np.float32)
    int8 = quantize_int8(onnx_path, frames, tmp_path / "q.onnx", method="minmax", progress=False,
                         target="cpu")
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", *model_args, "--onnx-int8", str(int8), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["label"]: r for r in result["end_to_end"]["runs"]}
    assert {"30 fps int8", "saturation int8"} <= set(rows)
    assert all(rows[k]["backend"]["precision"] == "int8" for k in ("30 fps int8", "saturation int8"))
    by_precision = result["targets"]["against_bounds"]["saturation_x_bound"]["by_precision"]
    assert by_precision["int8"]["bound_run"] == "onnxruntime int8 b1"
    assert by_precision["int8"]["x_bound"] == pytest.approx(
        rows["saturation int8"]["throughput_fps"] / by_precision["int8"]["bound_fps"], abs=1e-3)
    assert result["speedup_vs_baseline"] == pytest.approx(  # judged on the FP32 saturation row
        rows["saturation"]["throughput_fps"] / result["baseline"]["throughput_fps"], abs=1e-3)


@pytest.mark.parametrize("sat, e2e_p50, e2e_p99, held, met", [
    (470.0, 2.4, 4.7, 15, {"saturation_x_bound": True, "overhead_vs_paced_p50_ms": True,
                           "p99_x_p50": True, "streams_x_bound": True}),
    (450.0, 2.6, 5.3, 14, {"saturation_x_bound": False, "overhead_vs_paced_p50_ms": False,
                           "p99_x_p50": False, "streams_x_bound": False}),
])
def test_goals_are_judged_against_the_bounds_of_the_same_run(sat, e2e_p50, e2e_p99, held, met):
    """Model alone 540 frames/s (bound: 18 streams at 30 fps), paced alone p50 2.0 ms:
    saturation ≥ 459 (85%), live p50 ≤ 2.5 ms, p99 ≤ 2 × p50, ≥ 14.4 streams held."""
    from streamer.bench.bounds import against_bounds

    fp32 = {"backend": "onnxruntime", "precision": "fp32"}
    result = {
        "model_only": {"runs": [{"label": "onnxruntime fp32 b1", **fp32, "throughput_fps": 500.0},
                                {"label": "onnxruntime fp32 b8", **fp32, "throughput_fps": 540.0}],
                       "paced_at_live_rate": {"latency_ms": {"p50": 2.0}}},
        "end_to_end": {"runs": [
            {"label": "30 fps", "realtime": True, "backend": fp32, "throughput_fps": 30.0,
             "latency_ms": {"capture_to_publish": {"p50": e2e_p50, "p99": e2e_p99}}},
            {"label": "saturation", "realtime": False, "backend": fp32, "throughput_fps": sat}]},
        "streams": {"held": held, "bound_streams": 18.0, "held_x_bound": held / 18},
    }
    rows = against_bounds(result)
    assert {k: rows[k]["met"] for k in met} == met
    assert rows["saturation_x_bound"]["by_precision"]["fp32"]["bound_run"] == "onnxruntime fp32 b8"
    assert rows["overhead_vs_paced_p50_ms"]["value"] == pytest.approx(e2e_p50 - 2.0)
