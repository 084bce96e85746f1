"""The validation boundary of the commands: reading a model, a checkpoint or a data set.

Whatever goes wrong while *reading* one of these (a corrupt file, a wrong format, a bad data
spec) is the user's input, so it becomes one UserError line (exit 2); what goes wrong later,
while working with what was read, stays a bug with its traceback (exit 1)."""

from __future__ import annotations

from pathlib import Path

from streamer.errors import UserError, user_input


def existing(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    return p


def model_file(path: str | Path | None) -> Path:
    """The model file a --model names: a file as it is; a folder streamer adapt wrote, its
    model.onnx; nothing, the bundled model. Whether the file reads is its loader's to say."""
    from engines.adapt.folder import MODEL
    from engines.defaults import default_onnx

    if not path:
        return default_onnx()
    p = Path(path)
    if p.is_dir():
        if not (p / MODEL).is_file():
            raise UserError(f"{p} is a folder without {MODEL}: give a model file, or a folder "
                            "streamer adapt wrote")
        return p / MODEL
    return p


def model_info(path: str | Path):
    """ModelInfo of an ONNX model, or one line saying why the file is not one."""
    from engines.model_info import ModelInfo

    existing(path, "ONNX model")
    with user_input(f"cannot read ONNX model {path}"):
        return ModelInfo.from_onnx(path)


def checkpoint(path: str | Path) -> dict:
    """The payload of a torch checkpoint, or one line saying why the file is not one."""
    existing(path, "checkpoint")
    with user_input(f"cannot read checkpoint {path}", subject=path):
        from engines.checkpoint import read_checkpoint

        return read_checkpoint(path)


def load_model(path: str | Path, **overrides):
    """A torch model from a checkpoint (ours or the paper's), or one line."""
    existing(path, "checkpoint")
    with user_input(f"cannot load checkpoint {path}", subject=path):
        from engines.checkpoint import load_checkpoint

        return load_checkpoint(path, **overrides)


def dataset(spec: str, representation: str, input_size: int, *form):
    """A labelled data set from its spec, as the model's representation (and ``form``: what
    else for_representation takes) needs it, or one line."""
    from engines.datasets import for_representation, open_dataset

    with user_input(f"cannot open data {spec!r}"):
        return open_dataset(for_representation(spec, representation, *form), input_size=input_size)


def frames(spec: str, size: int, count: int):
    """Calibration frames (a data spec, a folder of images or a video), or one line."""
    from calibration.frames import load_frames

    with user_input(f"cannot read frames from {spec!r}"):
        return load_frames(spec, size, count)
