import pytest
import torch
from torch import nn

from engines.backbones import BACKBONES
from engines.checkpoint import split_grouped
from engines.classes import RELEASE_CLASSES
from engines.model import ModelConfig, SPNModel
from engines.soft_proposal import SoftProposal

MAP_SIZE = {"compact": 14, "compact_wide": 14, "vgg13": 14, "vgg13_bn": 14, "vgg16": 14, "vgg16_bn": 14,
            "resnet18": 7, "resnet34": 7}


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_every_backbone_gives_scores_and_maps_at_the_paper_resolution(arch):
    model = SPNModel(ModelConfig(arch=arch, proposal_mode="unrolled")).eval()
    with torch.no_grad():
        scores, maps = model(torch.rand(1, 1, 224, 224))
    s = MAP_SIZE[arch]
    assert scores.shape == (1, 6) and maps.shape == (1, 6, s, s)
    assert model.features[0].in_channels == 1
    assert not any(isinstance(m, nn.MaxPool2d) for m in list(model.features)[-1:])


def test_cam_maps_sum_to_scores_minus_bias():
    """Σ_hw Σ_k w_ck·U_k·M = linear(Σ_hw U·M) - b: the map explains the score."""
    model = SPNModel(ModelConfig(input_size=64)).eval()
    with torch.no_grad():
        scores, maps = model(torch.rand(3, 1, 64, 64))
    bias = model.head.classifier[0].bias
    assert torch.allclose(maps.sum(dim=(2, 3)) + bias, scores, atol=1e-5)


def straightforward_per_class(model: SPNModel, x: torch.Tensor):
    """Each class its own conv, soft proposal, sum and linear(num_maps→1), one at a time."""
    head, c = model.head, model.head.num_classes
    f = model.features(x)
    weights, biases = split_grouped(head.conv.weight, c), split_grouped(head.conv.bias, c)
    sp = SoftProposal(model.cfg.proposal_mode, model.cfg.iterations)
    scores, maps = [], []
    for i in range(c):
        conv = nn.Conv2d(f.shape[1], head.num_maps, 3, padding=1, groups=2).to(x.dtype)
        conv.weight.data, conv.bias.data = weights[i], biases[i]
        coupled, _ = sp(torch.relu(conv(f)))
        scores.append(coupled.sum(dim=(2, 3)) @ head.weight[i] + head.bias[i])
        maps.append(torch.einsum("k,bkhw->bhw", head.weight[i], coupled))
    return torch.stack(scores, 1), torch.stack(maps, 1)


@pytest.mark.parametrize("mode", ["converge", "unrolled", "stationary"])
def test_fused_per_class_head_equals_the_straightforward_form(mode):
    """Exact in float64 (float32 differs only by rounding in the distance formula)."""
    torch.manual_seed(1)
    model = SPNModel(ModelConfig(head="per_class", input_size=64, num_maps=16,
                                 proposal_mode=mode)).eval().double()
    with torch.no_grad():
        model.head.bias.uniform_(-1, 1)
        x = torch.rand(2, 1, 64, 64, dtype=torch.float64)
        fused = model(x)
        reference = straightforward_per_class(model, x)
    assert torch.allclose(fused[0], reference[0], rtol=1e-9, atol=1e-12)
    assert torch.allclose(fused[1], reference[1], rtol=1e-9, atol=1e-12)


def test_per_class_head_has_one_proposal_map_per_class():
    model = SPNModel(ModelConfig(head="per_class", input_size=64)).eval()
    with torch.no_grad():
        m = model.proposal_maps(torch.rand(2, 1, 64, 64))
    assert m.shape == (2, 6, 4, 4)
    assert not torch.allclose(m[:, 0], m[:, 1])


def test_release_classes_with_softmax_run():
    cfg = ModelConfig(classes=RELEASE_CLASSES, activation="softmax", input_size=64)
    scores, maps = SPNModel(cfg).eval()(torch.rand(1, 1, 64, 64))
    assert scores.shape == (1, 7) and maps.shape[1] == 7


def test_proposal_map_kind_outputs_m():
    model = SPNModel(ModelConfig(input_size=64, map_kind="proposal")).eval()
    with torch.no_grad():
        _, maps = model(torch.rand(1, 1, 64, 64))
    assert torch.allclose(maps.sum(dim=(2, 3)), torch.ones(1, 6), atol=1e-5)


def test_gradients_reach_the_head_and_backbone():
    model = SPNModel(ModelConfig(input_size=64)).train()
    scores, _ = model(torch.rand(2, 1, 64, 64))
    scores.sum().backward()
    assert model.head.adconv.weight.grad.abs().sum() > 0
    assert model.features[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bad, message", [
    ({"arch": "vgg11"}, "arch"), ({"activation": "tanh"}, "activation"),
    ({"head": "both"}, "head"), ({"classes": ()}, "classes"), ({"classes": ("a", "a")}, "unique"),
    ({"num_maps": 5}, "num_maps"), ({"input_size": 100}, "input_size"),
    ({"map_kind": "grad"}, "map_kind"),
])
def test_config_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**bad)


def test_config_round_trip_and_unknown_keys():
    cfg = ModelConfig(arch="resnet18", head="per_class", num_maps=64)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "dropout": 0.5})
    assert ModelConfig(arch="vgg16").num_maps == 512
