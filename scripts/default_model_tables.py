"""The bundled default model's tables in docs/models.md, generated from its recorded reports (no typed numbers).

    python scripts/default_model_tables.py collect --before DIR --after DIR \
        [--before-name TEXT] [--after-name TEXT] [--also NAME=DIR ...]
                                                          (writes comparison.json, then prints)
    python scripts/default_model_tables.py add --also NAME=DIR ...   (more rows in comparison.json,
                                                          the rows before kept; then prints)
    python scripts/default_model_tables.py stages STYLE=DIR ...   (history.json of a model trained
                                                          in stages, then prints)
    python scripts/default_model_tables.py                (prints the tables)

``collect`` reads ``streamer eval`` report.json files from DIR/<set>/report.json for the sets
below (one directory per model) into engines/default_model/comparison.json. Printing reads that,
ood.json (``streamer ood-fit --report``), the reference*/reference_frames.json records
(scripts/reference_frame.py) and live_accuracy.json (benchmarks/live_accuracy.py --json) and
writes the markdown docs/models.md shows.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

DEST = Path(__file__).resolve().parents[1] / "engines" / "default_model"
SETS = {  # name in the table: (eval directory name, what it is)
    "classic style": ("classic", "`style=classic`, seed 1000: the demo's sweep"),
    "widened style": ("train", "`style=train`, seed 1000"),
    "held-out style": ("heldout", "`style=heldout`, seed 2000"),
    "second renderer": ("scatter", "`style=scatter`, seed 3000: scatterers ⊛ PSF, which no shipped stage trains on"),
}


def collect(roots: dict[str, Path], names: dict[str, str]) -> dict:
    """Each model's (key → eval root) mean accuracy and pointing game per set."""
    out = {"models": names}
    for name, (sub, what) in SETS.items():
        row = {"what": what}
        for label, root in roots.items():
            path = root / sub / "report.json"
            if path.is_file():
                r = json.loads(path.read_text())
                row[label] = {"mean_accuracy": r["mean_accuracy"], "pointing_game": r["pointing_game"],
                              "frames": r["frames"], "data": r["data"]}
        out[name] = row
    return out


def add(comp: dict, roots: dict[str, Path]) -> dict:
    """``comp`` with one more row per (name → eval root), after the rows it has."""
    n = sum(key.startswith("also") for key in comp["models"])
    keys = {f"also{n + i}": (name, root) for i, (name, root) in enumerate(roots.items())}
    more = collect({k: root for k, (_, root) in keys.items()}, {k: name for k, (name, _) in keys.items()})
    out = {name: dict(row) for name, row in comp.items()}
    out["models"].update(more["models"])
    for name in SETS:
        out.setdefault(name, {"what": SETS[name][1]}).update(
            {k: v for k, v in more[name].items() if k != "what"})
    return out


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def simulated_table(comp: dict) -> str:
    """One row per model, one column per set: mean accuracy / pointing game (%)."""
    names = comp.get("models", {})
    sets = {name: row for name, row in comp.items() if name != "models"}
    head = " | ".join(f"{name} ({row['what']})" for name, row in sets.items())
    rows = [f"| model: accuracy / pointing game | {head} | frames |", "|---|" + "---|" * (len(sets) + 1)]
    for key, model in names.items():
        cells = " | ".join(f"{pct(row.get(key, {}).get('mean_accuracy'))} / "
                           f"{pct(row.get(key, {}).get('pointing_game'))}" for row in sets.values())
        n = sorted({row[key]["frames"] for row in sets.values() if key in row}) or ["–"]
        rows.append(f"| {model} | {cells} | {', '.join(map(str, n))} |")
    return "\n".join(rows)


def ood_table(report: dict) -> str:
    methods = report.get("methods", {})
    kinds = list(next(iter(methods.values()))["kinds"]) if methods else []
    rows = ["| method | " + " | ".join(kinds) + " | mean | in-style flagged |",
            "|---|" + "---|" * (len(kinds) + 2)]
    for m, r in methods.items():
        mark = " (chosen)" if m == report.get("method") else ""
        rows.append(f"| {m}{mark} | " + " | ".join(f"{r['kinds'][k]['auroc']:.3f}" for k in kinds)
                    + f" | {r['mean_auroc']:.3f} | {100 * r['false_alarms']:.1f}% |")
    chosen = methods.get(report.get("method"), {})
    if chosen:
        rows.append("| flagged unfamiliar at the limit | " + " | ".join(
            f"{100 * chosen['kinds'][k]['flagged']:.0f}%" for k in kinds) + " | | |")
    return "\n".join(rows)


REFERENCE_RECORDS = {"reference": "shipped", "reference_compact": "compact, fine-tuned (shipped before; stage 3)",
                     "reference_previous": "previous (classic only)",
                     "reference_mixed": "classic + widened from scratch (not shipped)"}


def reference_table(records: dict[str, dict]) -> str:
    first = next(iter(records.values()))
    classes = list(first["frames"][0]["probabilities"])
    rows = ["| frame | model | " + " | ".join(classes) + " | reported present | ood | familiar |",
            "|---|---|" + "---|" * (len(classes) + 3)]
    for label, rec in records.items():
        for r in rec.get("frames", []):
            probs = " | ".join(f"{r['probabilities'][c]:.2f}" for c in classes)
            ood = "–" if r["ood"] is None else f"{r['ood']:.3f}"
            fam = "–" if r["familiar"] is None else ("yes" if r["familiar"] else "**no**")
            rows.append(f"| {r['frame']} ({r['form']}; {r['truth']}) | {label} | {probs} | "
                        f"{', '.join(r['present']) or '–'} | {ood} | {fam} |")
    return "\n".join(rows)


def live_table(record: dict) -> str:
    rows = [f"| model ({record['what']}) | decision accuracy | pointing game | frames |",
            "|---|---|---|---|"]
    rows += [f"| {r['name']} | {pct(r['accuracy'])} | {pct(r['pointing_game'])} | {r['frames']} |"
             for r in record["results"]]
    return "\n".join(rows)


def report_table(report_md: str) -> str:
    """The per-class table of a ``streamer eval`` report.md."""
    return "\n".join(line for line in report_md.splitlines() if line.startswith("|"))


def stages_record(stages: list[tuple[str, Path]]) -> dict:
    """The last stage's history.json, with every stage's style, epochs, learning rates and time
    (``stages``): a model fine-tuned in stages (scripts/train_shipped) is all of them."""
    out = {}
    rows = []
    for style, root in stages:
        h = json.loads((root / "history.json").read_text())
        epochs = h.get("history", [])
        rows.append({"style": style, "arch": h.get("arch", ""), "data": h.get("data", ""),
                     **({"augment": h["augment"]} if h.get("augment") else {}), "epochs": len(epochs),
                     "lr": [round(e["lr"], 6) for e in epochs[:1]] + [round(epochs[-1]["lr"], 6)],
                     "seconds": round(sum(e.get("seconds", 0.0) for e in epochs), 1)})
        out = h
    return {**out, "stages": rows}


def _seed(stage: dict) -> str | None:
    m = re.search(r"seed=(\d+)", stage.get("data", ""))
    return m and m[1]


def _stage_words(earlier: list[dict], stage: dict) -> tuple[str, str]:
    """What to say before and inside a fine-tuning stage's brackets: that it widened the previous
    stage's backbone (engines/widen.py), and that it trained on frames of a seed no earlier stage
    used (said only when every earlier stage's seed is known), with photometric augmentation."""
    a, b = earlier[-1].get("arch"), stage.get("arch")
    widened = f"widened to `{b}`, " if a and b and a != b else ""
    augmented = (f"photometric augmentation {stage['augment']:g}; "
                 if stage.get("augment") else "")
    seeds = [_seed(st) for st in earlier]
    if not _seed(stage) or not all(seeds) or _seed(stage) in seeds:
        return widened, augmented
    n = re.search(r"n=(\d+)", stage["data"])
    return widened, (f"{int(n[1]):,} " if n else "") + "frames no earlier stage saw; " + augmented


def training_line(history: dict) -> str:
    epochs = history.get("history", [])
    minutes = sum(e.get("seconds", 0.0) for e in epochs) / 60
    stages = history.get("stages")
    if stages:
        minutes = sum(st["seconds"] for st in stages) / 60
        first, *tuning = stages
        parts = []
        for i, st in enumerate(tuning, 1):
            before, inside = _stage_words(stages[:i], st)
            parts.append(f"{before}{st['epochs']} epochs on `style={st['style']}` "
                         f"({inside}lr {st['lr'][0]:g} → {st['lr'][-1]:g})")
        what = (f"{first['epochs']} epochs on `style={first['style']}` frames, then fine-tuned "
                + ", then ".join(parts) + ";")
    else:
        what = f"{len(epochs)} epochs"
    return (f"Training: {what}{',' if not stages else ''} {minutes:.0f} minutes for the epochs on this machine "
            f"(`history.json`); the soft proposal is unrolled to {history.get('unrolled_iterations')} "
            f"iterations (the reference loop needed {min(history.get('convergence_iterations', [0]))}–"
            f"{max(history.get('convergence_iterations', [0]))} on validation frames).")


def tables() -> str:
    parts = []
    report = DEST / "report.md"
    if report.is_file():
        parts.append(report_table(report.read_text()))
    history = DEST / "history.json"
    if history.is_file():
        parts.append(training_line(json.loads(history.read_text())))
    comp = DEST / "comparison.json"
    if comp.is_file():
        parts.append(simulated_table(json.loads(comp.read_text())))
    ood = DEST / "ood.json"
    if ood.is_file():
        parts.append(ood_table(json.loads(ood.read_text())))
    records = {label: json.loads((DEST / d / "reference_frames.json").read_text())
               for d, label in REFERENCE_RECORDS.items()
               if (DEST / d / "reference_frames.json").is_file()}
    if records:
        parts.append(reference_table(records))
    live = DEST / "live_accuracy.json"
    if live.is_file():
        parts.append(live_table(json.loads(live.read_text())))
    return "\n\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", default="print", choices=("print", "collect", "add", "stages"))
    ap.add_argument("stage", nargs="*", metavar="STYLE=DIR",
                    help="stages: each training stage's style and work directory, in order")
    ap.add_argument("--before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--before-name", default="before")
    ap.add_argument("--after-name", default="after")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=DIR",
                    help="another model's eval root, shown after the two")
    args = ap.parse_args()
    if args.command == "stages":
        stages = [(style, Path(root)) for style, _, root in (a.partition("=") for a in args.stage)]
        (DEST / "history.json").write_text(json.dumps(stages_record(stages), indent=1))
    if args.command == "collect":
        if not (args.before and args.after):
            raise SystemExit("collect needs --before and --after")
        roots = {"before": args.before, "after": args.after}
        names = {"before": args.before_name, "after": args.after_name}
        for i, item in enumerate(args.also):
            name, _, root = item.partition("=")
            roots[f"also{i}"], names[f"also{i}"] = Path(root), name
        (DEST / "comparison.json").write_text(json.dumps(collect(roots, names), indent=1))
    if args.command == "add":
        if not args.also:
            raise SystemExit("add needs --also NAME=DIR")
        more = {name: Path(root) for name, _, root in (a.partition("=") for a in args.also)}
        comp = json.loads((DEST / "comparison.json").read_text())
        (DEST / "comparison.json").write_text(json.dumps(add(comp, more), indent=1))
    print(tables())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
