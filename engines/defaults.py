"""Where the bundled default model lives (trained on simulated data, shipped in the package)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DEFAULT_ONNX = DEFAULT_MODEL_DIR / "sonostream_default.onnx"
DEFAULT_CHECKPOINT = DEFAULT_MODEL_DIR / "sonostream_default.pt"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"the bundled default model is missing ({path}); pass a model explicitly or "
            "rebuild it with scripts/train_default"
        )
    return path


def default_onnx() -> Path:
    return _require(DEFAULT_ONNX)


def default_checkpoint() -> Path:
    return _require(DEFAULT_CHECKPOINT)
