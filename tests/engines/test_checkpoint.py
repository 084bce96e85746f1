import pytest
import torch
from torch import nn

from engines.checkpoint import fuse_grouped, infer_arch, load_checkpoint, save_checkpoint
from engines.classes import RELEASE_CLASSES
from engines.input_recipe import FETALNAV, InputRecipe
from engines.model import ModelConfig, SPNModel
from engines.soft_proposal import SoftProposal


def outputs(model, x):
    with torch.no_grad():
        return model.eval()(x)


def test_own_format_round_trip_carries_config(tmp_path):
    model = SPNModel(ModelConfig(input_size=64, head="per_class", classes=("a", "b", "c")))
    path = save_checkpoint(model, tmp_path / "m.pt", epoch=3)
    loaded = load_checkpoint(path)
    assert loaded.cfg == model.cfg and loaded.cfg.classes == ("a", "b", "c")
    x = torch.rand(2, 1, 64, 64)
    for a, b in zip(outputs(model, x), outputs(loaded, x), strict=True):
        assert torch.equal(a, b)


def release_state(model: SPNModel) -> dict:
    """Our shared-head model's weights laid out as the paper's release names them."""
    rename = {"head.adconv.": "spatial_pooling.adconv.", "head.classifier.0.": "classifier.0."}
    out = {}
    for key, value in model.state_dict().items():
        for ours, theirs in rename.items():
            key = key.replace(ours, theirs)
        out[key] = value
    return out


@pytest.mark.parametrize("arch", ["vgg13_bn", "vgg16", "resnet18", "resnet34"])
def test_arch_is_inferred_from_release_features(arch):
    assert infer_arch(release_state(SPNModel(ModelConfig(arch=arch, num_maps=8)))) == arch


def test_release_checkpoint_loads_with_sorted_labels_sigmoid_and_its_recipe(tmp_path):
    torch.manual_seed(0)
    source = SPNModel(ModelConfig(arch="vgg13_bn", classes=RELEASE_CLASSES, num_maps=32))
    path = tmp_path / "fetalnav.pth.tar"
    torch.save({"epoch": 30, "arch": "vgg13_bn", "state_dict": release_state(source),
                "best_score": 0.5}, path)
    loaded = load_checkpoint(path)
    assert loaded.cfg.classes == tuple(sorted(RELEASE_CLASSES)) == RELEASE_CLASSES
    assert RELEASE_CLASSES[1] == "Background" and loaded.cfg.activation == "sigmoid"
    assert loaded.cfg.arch == "vgg13_bn" and loaded.cfg.num_maps == 32
    assert loaded.cfg.representation == "polar"
    assert InputRecipe.from_json(loaded.cfg.extra["recipe"]) == FETALNAV
    # our format keeps what the import decided
    again = load_checkpoint(save_checkpoint(loaded, tmp_path / "ours.pt"))
    assert again.cfg.classes == RELEASE_CLASSES and again.cfg.extra == loaded.cfg.extra
    x = torch.rand(1, 1, 224, 224)
    assert torch.allclose(outputs(source, x)[0], outputs(loaded, x)[0], atol=1e-6)


def test_per_class_release_checkpoint_loads_into_the_fused_head(tmp_path):
    torch.manual_seed(0)
    base = SPNModel(ModelConfig(arch="resnet18", num_maps=16))
    convs = [nn.Conv2d(512, 16, 3, padding=1, groups=2) for _ in RELEASE_CLASSES]
    linears = [nn.Linear(16, 1) for _ in RELEASE_CLASSES]
    state = {k: v for k, v in base.state_dict().items() if k.startswith("features.")}
    for i, (conv, linear) in enumerate(zip(convs, linears, strict=True)):
        state |= {f"spatial_poolings.{i}.adconv.{k}": v for k, v in conv.state_dict().items()}
        state |= {f"classifiers.{i}.{k}": v for k, v in linear.state_dict().items()}
    torch.save(state, tmp_path / "per_class.pth")
    loaded = load_checkpoint(tmp_path / "per_class.pth", input_size=224)
    assert loaded.cfg.head == "per_class" and loaded.cfg.classes == RELEASE_CLASSES

    x = torch.rand(1, 1, 224, 224)
    sp = SoftProposal("converge")
    with torch.no_grad():
        f = base.features.eval()(x)
        expected = torch.cat([lin(sp(torch.relu(conv(f)))[0].sum(dim=(2, 3)))
                              for conv, lin in zip(convs, linears, strict=True)], dim=1)
    assert torch.allclose(outputs(loaded, x)[0], expected, atol=1e-5)


def test_fuse_grouped_orders_channels_by_group_then_class():
    a, b = torch.arange(4.0), torch.arange(4.0) + 10
    assert fuse_grouped([a, b]).tolist() == [0, 1, 10, 11, 2, 3, 12, 13]


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither"):
        load_checkpoint(tmp_path / "other.pt")
    model = SPNModel(ModelConfig(input_size=64))
    path = save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(path, arch="resnet18")
