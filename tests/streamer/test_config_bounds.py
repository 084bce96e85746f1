"""Every value a `streamer run` config can hold is checked at start: a file that does not parse,
a number out of its bounds (or not finite), a threshold for a class the model lacks, an roi
outside a fixed-size source's frames: one line naming the file or the key, exit 2."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from streamer.cli import main
from streamer.config import SECTIONS, load_config
from streamer.config_bounds import Bounds
from streamer.errors import UserError

RUN = ["run", "--publish", "", "--metrics-port", "0"]


def run_lines(capsys, *args) -> tuple[int, list[str]]:
    code = main([*RUN, *args])
    return code, capsys.readouterr().err.strip().splitlines()


def write(tmp_path, content: str | bytes):
    path = tmp_path / "run.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("content, says", [
    # Before: RecursionError and UnicodeDecodeError tracebacks, exit 1
    ("[source]\nspec = " + "[" * 200_000 + "]" * 200_000 + "\n", "nested too deeply"),
    (b'[source]\nspec = "sim\xff"\n', "is not UTF-8 text (byte 0xff at offset 20)"),
])
def test_a_file_that_does_not_parse_is_one_line_naming_it(tmp_path, capsys, content, says):
    path = write(tmp_path, content)
    with pytest.raises(UserError, match=str(path)):
        load_config(path)
    code, err = run_lines(capsys, "--config", str(path))
    assert code == 2 and len(err) == 1 and str(path) in err[0] and says in err[0], err


@pytest.mark.parametrize("text, says", [
    # Before, each was accepted: inf made close() raise OverflowError (exit 1, then abort), 1e300
    # would overflow the first reconnect wait, 1e6 queues grew by 1.3 GB in 15 s, 1000 threads ran
    ("[pipeline]\nstop_timeout_s = inf", "[pipeline] stop_timeout_s must be in (0, 60], got inf"),
    ("[source]\nretry_initial_s = 1e300\nretry_max_s = 1e300",
     "[source] retry_initial_s must be in (0, 3600], got 1e+300"),
    ("[pipeline]\nqueue_size = 1000000", "[pipeline] queue_size must be in 1..16, got 1000000"),
    ("[pipeline]\nmax_batch = 1000000", "[pipeline] max_batch must be in 1..16, got 1000000"),
    ("[model]\nthreads = 1000", "[model] threads must be in 0..256, got 1000"),
    ("[pipeline]\nduration_s = inf", "[pipeline] duration_s must be in 0..31622400, got inf"),
    ("[pipeline]\nmax_frames = 10000000000000", "[pipeline] max_frames must be in 0..1000000000000"),
    ("[preprocess]\nroi = [0, 0, 100000, 100]",
     "[preprocess] roi must be in 0..16384 (each value), got 100000"),
    ("[preprocess]\nredetect_every = 10000000000", "[preprocess] redetect_every must be in 0..1000000"),
])
def test_numbers_out_of_their_bounds_are_one_line(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: {says}")


def test_every_numeric_field_carries_its_bounds():
    """So a generated reference can show them (and nothing numeric goes unchecked)."""
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = str(hints[f.name])
            numeric = any(t in hint for t in ("int", "float")) and "dict" not in hint
            if numeric and hints[f.name] is not bool:
                assert isinstance(f.metadata.get("bounds"), Bounds), f"[{name}] {f.name}"


def test_a_duration_flag_that_is_not_finite_is_one_line(capsys):
    code, err = run_lines(capsys, "--source", "sim:realtime=0,frames=2", "--duration", "inf")
    assert code == 2 and len(err) == 1 and "[pipeline] duration_s must be in" in err[0], err


def test_a_threshold_for_a_class_the_model_lacks_is_refused_at_start(tmp_path, capsys):
    """Before: accepted, and `hed` was silently never used (exit 0)."""
    path = write(tmp_path, "[postprocess.thresholds]\nhed = 0.6\n")
    code, err = run_lines(capsys, "--config", str(path), "--source", "sim:realtime=0,frames=2")
    assert code == 2 and len(err) == 1, err
    assert "[postprocess] thresholds name 'hed', not a class of" in err[0]
    assert "did you mean 'head'?" in err[0]


def test_an_roi_outside_the_simulated_frames_is_refused_before_any_frame(tmp_path, capsys):
    """Before: every frame invalid (a warning, rate-limited), exit 0 once the source ended."""
    path = write(tmp_path, "[preprocess]\nroi = [600, 0, 100, 100]\n")
    sim = "sim:realtime=0,frames=3,width=640,height=360"
    code, err = run_lines(capsys, "--config", str(path), "--source", sim)
    assert code == 2 and len(err) == 1, err
    assert "[preprocess] roi [600, 0, 100, 100] (x, y, w, h) lies outside the source's 640x360 " \
           "frames" in err[0]
    capsys.readouterr()
    path.write_text("[preprocess]\nroi = [540, 0, 100, 100]\n")  # the same roi, inside: it runs
    assert main([*RUN, "--config", str(path), "--source", sim]) == 0
    assert "processed 3, dropped 0, invalid 0" in capsys.readouterr().out
