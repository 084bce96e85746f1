"""Widening a trained compact model (Net2WiderNet): the wider model starts where the narrow one was."""

import pytest
import torch

from engines import backbones
from engines.checkpoint import save_checkpoint
from engines.model import ModelConfig, SPNModel
from engines.training import TrainConfig, Trainer, to_tensor
from engines.widen import widen


def trained_like(arch="compact", seed=0) -> SPNModel:
    """A model whose weights and batch-norm statistics are all different from their defaults."""
    torch.manual_seed(seed)
    model = SPNModel(ModelConfig(arch=arch, input_size=64))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_the_widened_model_computes_what_the_narrow_one_did():
    narrow = trained_like()
    wide = widen(narrow, "compact_wide")
    x = torch.rand(3, 1, 64, 64)
    (s0, m0), (s1, m1) = narrow(x), wide(x)
    assert wide.cfg.arch == "compact_wide"
    assert sum(p.numel() for p in wide.parameters()) > 1.5 * sum(p.numel() for p in narrow.parameters())
    torch.testing.assert_close(s1, s0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m1, m0, rtol=1e-4, atol=1e-4)


def test_copied_channels_are_read_through_unequal_shares_so_they_can_learn_apart():
    """The next conv reads a channel and its copies with weights summing to the original's; equal
    shares would give a copy and its original equal gradients for ever."""
    narrow = trained_like()
    wide = widen(narrow, "compact_wide", spread=0.1)
    first, new_first = narrow.features[0].weight, wide.features[0].weight
    rows = narrow.features[3].out_channels  # the wide conv's first rows are the narrow one's
    second, new_second = narrow.features[3].weight, wide.features[3].weight[:rows]
    source = [int(torch.nonzero((new_first[j] == first).flatten(1).all(dim=1))[0])
              for j in range(len(new_first))]
    copied = {s for j, s in enumerate(source) if j >= len(first)}
    assert copied
    for s in copied:
        group = [j for j, t in enumerate(source) if t == s]
        torch.testing.assert_close(sum(new_second[:, j] for j in group), second[:, s])
        assert not torch.allclose(new_second[:, group[0]], new_second[:, group[1]])


@pytest.mark.parametrize("factory, message", [
    (lambda: backbones.vgg(backbones._VGG_LAYOUTS["vgg13"], True), "differ beyond width"),
    (lambda: backbones.vgg(backbones._VGG_LAYOUTS["vgg13"], False), "plain conv"),
    (lambda: backbones.compact(16, out_channels=128), "narrower"),
    (lambda: backbones.compact(48), "must keep their width"),
])
def test_what_cannot_be_widened_says_why(factory, message, monkeypatch):
    monkeypatch.setitem(backbones.BACKBONES, "target_test", factory)
    with pytest.raises(ValueError, match=message):
        widen(trained_like(), "target_test")


def test_fine_tuning_a_compact_checkpoint_as_compact_wide_starts_from_its_function(tmp_path):
    narrow = trained_like()
    save_checkpoint(narrow, tmp_path / "narrow.pt")
    cfg = TrainConfig(data="sim:n=4,seed=1,style=classic", val="sim:n=4,seed=2,style=classic",
                      out=str(tmp_path / "run"), arch="compact_wide", init=str(tmp_path / "narrow.pt"),
                      epochs=1, batch_size=4, input_size=64, progress=False)
    trainer = Trainer(cfg, None, None)
    x = to_tensor(trainer.val_x)
    assert trainer.model.cfg.arch == "compact_wide"
    torch.testing.assert_close(trainer.model.eval()(x)[0], narrow(x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["compact", "vgg13_bn"])
def test_an_init_that_cannot_start_the_model_is_one_line_before_any_frame_is_read(arch, tmp_path,
                                                                                   capsys, monkeypatch):
    from engines import training
    from streamer.cli import main

    def no_frames(*args):
        raise AssertionError("frames read before the init was checked")

    monkeypatch.setattr(training, "materialise", no_frames)
    init = tmp_path / "wide.pt"
    save_checkpoint(trained_like("compact_wide"), init)
    rc = main(["train", "--data", "sim:n=4,seed=1", "--val", "sim:n=4,seed=2", "--out", str(tmp_path / "run"),
               "--arch", arch, "--init", str(init), "--epochs", "1", "--input-size", "64", "--quiet"])
    assert rc == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"streamer train: error: --init {init}: cannot widen compact_wide into {arch}: "
        + ("a layer of it is narrower" if arch == "compact" else "the layers differ beyond width")]
