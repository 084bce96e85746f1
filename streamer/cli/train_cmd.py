"""streamer train: weakly supervised training on image-level labels.

Its flags are made from ``engines.train_config.TrainConfig`` (names, types, defaults, help), so
the defaults live in one place; ``--config FILE`` reads the same settings from a TOML ``[train]``
section, and flags given on the command line override the file.
"""

from __future__ import annotations

import dataclasses

from engines.train_config import TrainConfig
from streamer.errors import UserError

HELP = "train a soft-proposal model on image-level labels (sim:..., a folder with labels.csv, ...)"
REQUIRED = ("data", "val", "out")
_TYPES = {"int": int, "float": float, "str": str}


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML file with a [train] section of these "
                                                    "settings (flags override it)")
    for f in dataclasses.fields(TrainConfig):
        help_text = f.metadata.get("help", f.name.replace("_", " "))
        if f.type == "bool":
            off = f.metadata.get("off")
            if off:  # on by default: the flag turns it off
                p.add_argument(off, dest=f.name, action="store_false", default=None,
                               help=f"no {help_text}")
            else:
                p.add_argument(_flag(f.name), dest=f.name, action="store_true", default=None,
                               help=help_text)
            continue
        default = "required" if f.name in REQUIRED else f"default: {f.default!r}"
        p.add_argument(_flag(f.name), dest=f.name, type=_TYPES[f.type], default=None,
                       choices=f.metadata.get("choices"), help=f"{help_text} ({default})")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def train_config(args) -> TrainConfig:
    """The file's [train] section, then the flags given, validated by TrainConfig."""
    settings = _file_settings(args.config) if args.config else {}
    settings.update({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                     if getattr(args, f.name) is not None})
    missing = [_flag(name) for name in REQUIRED if not settings.get(name)]
    if missing:
        raise UserError(f"{', '.join(missing)} required (as flags or in the config's [train])")
    try:
        return TrainConfig(**settings)
    except (TypeError, ValueError) as exc:
        raise UserError(f"train: {exc}") from exc


def _file_settings(path: str) -> dict:
    from streamer.config import read_toml, section_values

    try:
        table = read_toml(path)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    unknown = sorted(set(table) - {"train"})
    if unknown:
        raise UserError(f"{path}: unknown section(s) {unknown}; train reads [train]")
    return section_values("train", table.get("train", {}), TrainConfig)


def run(args) -> int:
    from engines.training import train, validation_columns
    from streamer.cli import inputs

    cfg = train_config(args)
    # a bad spec or folder, or a class only validation names, is one line before any training;
    # validation may lack a class (none of its frames shows it)
    train_set, val_set = (inputs.dataset(spec, "", cfg.input_size) for spec in (cfg.data, cfg.val))
    try:
        validation_columns(val_set.classes, train_set.classes)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if cfg.arch not in _arches():
        raise UserError(f"unknown --arch {cfg.arch!r}; choose one of {', '.join(_arches())}")
    path = train(cfg)
    print(f"wrote {path}")
    return 0


def _arches() -> tuple[str, ...]:
    from engines.backbones import BACKBONES

    return tuple(BACKBONES)
