"""The model card: what an adapted model was made from, how it scores before and after, its OOD
statistics, its INT8 check, the time it took and the commands that run and serve it (Markdown,
with the same numbers in card.json)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from engines.adapt import folder


def commands(out: str, source: str = "") -> dict[str, str]:
    """The commands that use the output folder as it is."""
    q = shlex.quote
    run = f"streamer run --model {q(out)}" + (f" --source {q(source)}" if source else "")
    return {"run": run,
            "serve": f"streamer serve --model {q(out)}",
            "triton": f"streamer export --model {q(out)} --triton-repo {q(str(Path(out) / 'triton'))}",
            "tensorrt": f"streamer build --onnx {q(str(Path(out) / folder.INT8))} "
                        f"--out {q(str(Path(out) / 'model.plan'))}"}


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def change(a, b) -> str:
    return "–" if a is None or b is None else f"{100 * (b - a):+.1f}"


def _results(state: dict, in_style: str) -> list[str]:
    before, after = state["steps"]["before"], state["steps"]["after"]
    names = {"validation": "your validation loops", "in_style": f"in-style frames (`{in_style}`)"}
    rows = ["| | before (starting model) | after | change |", "|---|---|---|---|"]
    for key, what in names.items():
        if key not in after:
            continue
        for metric, label in (("mean_accuracy", "mean accuracy"), ("pointing_game", "pointing game")):
            a, b = before[key].get(metric), after[key].get(metric)
            if a is not None or b is not None:
                rows.append(f"| {what}: {label} | {pct(a)} | {pct(b)} | {change(a, b)} |")
    rows += ["", "Accuracy per class on your validation loops (frames showing it there):", "",
             "| class | before | after | frames |", "|---|---|---|---|"]
    counts = state.get("val_positives", {})
    for c, b in after["validation"]["per_class"].items():
        rows.append(f"| {c} | {pct(before['validation']['per_class'].get(c))} | {pct(b)} | "
                    f"{counts.get(c, '–')} |")
    return rows


def _training(cfg, state: dict) -> list[str]:
    t = state["steps"]["train"]
    stop = (f"Stopped early after epoch {t['epochs']}: none of the last {cfg.patience} scored "
            "better on validation" if t["stopped_early"] else f"All {t['epochs']} epochs ran")
    best = (f"epoch {t['best_epoch']} scored best on validation, and this model is its weights"
            if t["best_epoch"] else "no epoch scored better on validation than the starting "
            "model (epoch 0), so this model keeps its weights")
    mixed = (f", {t['rehearsal_frames']} frames of `{cfg.rehearse}` mixed in so that it keeps "
             "what it knew" if t.get("rehearsal_frames") else "")
    rows = [f"{stop}; {best} (batch {cfg.batch_size}, lr {cfg.lr:g} ×{cfg.lr_gamma:g} every "
            f"{cfg.lr_step} epochs, class-balanced sampling, flips{mixed}).", "",
            "| epoch | loss | validation accuracy | validation loss | lr | s |", "|---|---|---|---|---|---|"]
    for h in t["history"]:
        loss = "–" if h["loss"] is None else f"{h['loss']:.4f}"
        rows.append(f"| {h['epoch']} | {loss} | {pct(h['val_mean_accuracy'])} | "
                    f"{h['val_loss']:.4f} | {h['lr']:.3g} | {h['seconds']:.0f} |")
    return rows


def _ood(state: dict) -> list[str]:
    o = state["steps"]["ood"]
    if "skipped" in o:
        return [f"Not fitted: {o['skipped']}; `ood` is null in results."]
    flagged = o["flagged"]
    before = state["steps"]["before"].get("unfamiliar", {})
    parts = [f"{name.replace('_', '-')} frames {pct(v)}%" + (
        f" (the starting model's statistics: {pct(before[name])}%)" if name in before else "")
        for name, v in flagged.items()]
    return [f"Refitted on the {o['fit_frames']} training frames ({o['method']}, limit "
            f"{o['limit']}): flagged unfamiliar: " + "; ".join(parts) + "."]


def _int8(state: dict) -> list[str]:
    q = state["steps"]["int8"]
    if "skipped" in q:
        return [f"Not made: {q['skipped']}."]
    v = q["validation"]["mean_accuracy"]
    fp32 = state["steps"]["after"]["validation"]["mean_accuracy"]
    return [f"`{folder.INT8}` (Q/DQ for {q['target']}, {q['method']} calibration on "
            f"{q['calibration_frames']} training frames): decisions agree with FP32 on "
            f"{pct(q['decision_agreement'])}% of {q['held_out_frames']} validation frames, max "
            f"|Δp| {q['max_abs_dprob']:.4f}; validation mean accuracy {pct(fp32)} (FP32) → "
            f"{pct(v)} (INT8). Report: `{folder.PRECISION}/precision_report.md`."]


def markdown(cfg, state: dict, inputs) -> str:
    s, cmds = state["split"], inputs.commands or commands(cfg.out)
    took = {k: v.get("seconds", 0) for k, v in state["steps"].items()}
    lines = [f"# Adapted model `{Path(cfg.out).name}`", "",
             f"Made by `{cmds.get('adapt', 'streamer adapt')}` on {time.strftime('%Y-%m-%d')}, "
             f"from {'`' + cfg.init + '`' if cfg.init else 'the bundled model'}.", "",
             "## Data", "",
             f"- labelled loops: `{cfg.data}`; classes {', '.join(inputs.start.cfg.classes)}",
             f"- training: {s['train_frames']} frames of {len(s['train_loops'])} loops",
             f"- validation: {s['val_frames']} frames of {len(s['val_loops'])} loops ("
             + ", ".join(s["val_loops"][:10]) + (" …" if len(s["val_loops"]) > 10 else "") + ")",
             "", "## Before and after", "", *_results(state, cfg.in_style),
             "", "## Training", "", *_training(cfg, state),
             "", "## Out-of-distribution statistics", "", *_ood(state),
             "", "## INT8", "", *_int8(state),
             "", "## Time", "",
             f"{sum(took.values()) + inputs.read_seconds:.0f} s in all: reading the frames "
             f"{inputs.read_seconds:.0f} s, " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()),
             "", "## Use it", "", "```", *(cmds[k] for k in ("run", "serve", "triton", "tensorrt")),
             "```", "",
             f"`{folder.MODEL}` (FP32, with these OOD statistics) is what `--model "
             f"{shlex.quote(cfg.out)}` loads; "
             f"`{folder.CHECKPOINT}` starts further training (`--init`)."]
    return "\n".join(lines) + "\n"


def write(cfg, state: dict, inputs) -> Path:
    out = Path(cfg.out)
    record = {k: v for k, v in state.items() if k != "fingerprint"} | {"settings": state["fingerprint"]}
    (out / folder.CARD_JSON).write_text(json.dumps(record, indent=1, default=float))
    path = out / folder.CARD
    path.write_text(markdown(cfg, state, inputs))
    return path
