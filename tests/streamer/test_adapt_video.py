"""streamer adapt's screen recordings (video:DIR): each labelled frame is what streamer run feeds
the model when it plays that file, and a range past a video's end is one line."""

import cv2
import numpy as np
import pytest

from engines.checkpoint import load_checkpoint
from engines.defaults import DEFAULT_CHECKPOINT
from engines.input_recipe import InputRecipe


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from engines.simulator import LiveFeed

    folder = tmp_path_factory.mktemp("videos")
    for seed in (1, 2):
        feed = LiveFeed(seed=seed, width=480, height=360, style="heldout")
        writer = cv2.VideoWriter(str(folder / f"exam{seed}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                 30, (480, 360))
        for i in range(24):
            writer.write(feed.frame_at(i).image)
        writer.release()
    (folder / "labels.csv").write_text("file,frames,head,spine\nexam1.mp4,3-9,1,0\n"
                                       "exam1.mp4,20,0,1\nexam2.mp4,,1,1\n")
    return folder


def played(path, model, indices):
    """The model inputs streamer run's own source and preprocessing give those frames."""
    from streamer.config import PreprocessConfig
    from streamer.frames import SourceEnded
    from streamer.preprocess import Preprocessor
    from streamer.sources import create_source

    info = type("Info", (), {"representation": model.cfg.representation,
                             "input_size": model.cfg.input_size,
                             "recipe": InputRecipe.from_json(model.cfg.extra.get("recipe"))})
    pre = Preprocessor.for_model(PreprocessConfig(), info)
    out = {}
    with create_source(f"file:{path}") as source:
        try:
            while (frame := source.read(1.0)) is not None:
                tensor = pre.process(frame).tensor[0, 0]
                if frame.seq in indices:
                    out[frame.seq] = np.clip(np.rint(tensor * 255), 0, 255).astype(np.uint8)
        except SourceEnded:
            pass
    return out


def test_labelled_frames_are_what_streamer_run_feeds_the_model(videos):
    from streamer.adapt_video import VideoLoops

    model = load_checkpoint(DEFAULT_CHECKPOINT)
    data = VideoLoops(str(videos), model.cfg)
    assert data.classes == ("head", "spine") and data.representation == "polar"
    assert [(p.rsplit("/", 1)[1], i) for p, i in data.items] == (
        [("exam1.mp4", i) for i in [*range(3, 10), 20]] + [("exam2.mp4", i) for i in range(24)])
    assert data.labels[:8].tolist() == [[1, 0]] * 7 + [[0, 1]]
    want = played(videos / "exam1.mp4", model, {3, 9, 20})
    for k, index in ((0, 3), (6, 9), (7, 20)):
        assert np.array_equal(data[k].image, want[index]), index


def test_a_range_past_a_videos_end_is_one_line_naming_the_labels_line(videos, tmp_path, capsys):
    import shutil

    from streamer.cli import main

    videos = shutil.copytree(videos, tmp_path / "videos")
    (videos / "labels.csv").write_text("file,frames,head,spine\nexam1.mp4,3-9,1,0\n"
                                       "exam2.mp4,10-30,0,1\n")
    out = tmp_path / "model"
    assert main(["adapt", "--data", f"video:{videos}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{videos}/labels.csv:3: frames 10-30 outside exam2.mp4's 0-23" in err[0]
    assert not out.exists()
