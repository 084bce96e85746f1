"""streamer train's flags and --config come from TrainConfig: one place for the defaults."""

import dataclasses

import pytest

from engines.train_config import TrainConfig
from streamer.cli import build_parser, main
from streamer.cli.train_cmd import train_config


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


def test_flags_left_out_take_train_configs_own_defaults():
    cfg = train_config(parse("--data", "sim:n=8", "--val", "sim:n=4", "--out", "o"))
    assert cfg == TrainConfig(data="sim:n=8", val="sim:n=4", out="o")


def test_every_setting_has_a_flag():
    args = vars(parse())
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= set(args)
    off = parse("--no-balance", "--no-flip", "--quiet", "--resume")
    assert (off.balanced, off.hflip, off.progress, off.resume) == (False, False, False, True)


def test_config_file_with_flags_over_it(tmp_path):
    toml = tmp_path / "train.toml"
    toml.write_text('[train]\ndata = "sim:n=8"\nval = "sim:n=4"\nout = "runs/x"\nepochs = 3\n'
                    'lr = 1\nbalanced = false\n')
    cfg = train_config(parse("--config", str(toml), "--epochs", "5"))
    assert (cfg.data, cfg.out, cfg.epochs, cfg.lr, cfg.balanced) == ("sim:n=8", "runs/x", 5, 1.0, False)
    assert cfg.batch_size == TrainConfig.__dataclass_fields__["batch_size"].default


@pytest.mark.parametrize("text, flags, message", [
    ("[train]\nepoch = 3\n", [], "unknown key 'epoch' in section [train]"),
    ("[train]\nepochs = 'many'\n", [], "[train] epochs must be int"),
    ("[model]\npath = 'x'\n", [], "unknown section(s) ['model']"),
    ('[train]\ndata = "sim"\n', [], "--val, --out required"),
    ('[train]\ndata = "sim"\nval = "sim"\nout = "o"\nepochs = 0\n', [], "epochs must be ≥ 1"),
])
def test_bad_settings_are_one_line(tmp_path, capsys, text, flags, message):
    toml = tmp_path / "train.toml"
    toml.write_text(text)
    assert main(["train", "--config", str(toml), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
