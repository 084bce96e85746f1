"""The output folder of an adaptation: what it holds, and when it may be written.

Nothing is overwritten without ``force``: a finished adaptation, another command's unfinished
one, or a folder that no adaptation made are each refused in one line. The same command run
again on its own unfinished folder resumes it. The state file records the command's settings and
data (the fingerprint) and each finished step's results, written whole (temporary file, rename)
after every step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engines.atomic import write_atomic
from engines.errors import UserError

MODEL = "model.onnx"  # FP32, with the OOD statistics of the user's frames: what streamer run loads
INT8 = "model.int8.onnx"
CHECKPOINT = "model.pt"
CARD, CARD_JSON = "card.md", "card.json"
PRECISION = "precision"  # the INT8 precision report
WORK = "work"  # the state file, the trainer's checkpoints, the starting model's export
STATE = "state.json"
OURS = (MODEL, INT8, CHECKPOINT, CARD, CARD_JSON, PRECISION, WORK)


def state_path(out: str | Path) -> Path:
    return Path(out) / WORK / STATE


def read_state(out: str | Path) -> dict | None:
    path = state_path(out)
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "fingerprint" in state else None


def write_state(out: str | Path, state: dict) -> None:
    path = state_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(state, indent=1, default=float).encode())


def _differences(old: dict, new: dict) -> str:
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return ", ".join(f"{k} {old.get(k)!r} there, {new.get(k)!r} here" for k in keys[:3])


def check(out: str | Path, fingerprint: dict, force: bool) -> str:
    """"new" (nothing there, or ``force``) or "resume" (this command's unfinished run); anything
    else is one UserError saying what is there and what to do."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if not out.exists() or not any(out.iterdir()):
        return "new"
    state = read_state(out)
    if force:
        return "new"
    if state is None:
        raise UserError(f"--out {out} is not empty and no adaptation made it: choose a new folder, "
                        "or --force to write into it")
    if state.get("done"):
        raise UserError(f"--out {out} already holds an adapted model ({out / CARD}): --force to "
                        "adapt again over it")
    if state["fingerprint"] != fingerprint:
        raise UserError(f"--out {out} holds an unfinished adaptation of another command or data "
                        f"({_differences(state['fingerprint'], fingerprint)}): run that command "
                        "again to resume it, or --force to start over")
    return "resume"


def begin(out: str | Path, fingerprint: dict, mode: str) -> dict:
    """The state to go on from: this folder's (resume), or a fresh one after clearing what an
    earlier adaptation wrote there (only its own files)."""
    out = Path(out)
    if mode == "resume":
        state = read_state(out)
        if state is not None:
            return state
    out.mkdir(parents=True, exist_ok=True)
    for name in OURS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    state = {"fingerprint": fingerprint, "steps": {}, "done": False}
    write_state(out, state)
    return state
