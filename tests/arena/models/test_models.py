"""The suite every registered model must pass: shapes, splits, normalisation, determinism,
gradients; plus the CLA network's Table 5 layer shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from arena.models import MODELS, ArenaNet, build_model

NAMES = sorted(MODELS)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _build(name: str, shape: tuple[int, int, int] = (3, 16, 16), classes: int = 10) -> ArenaNet:
    return build_model(name, shape, classes)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 16, 16), (3, 32, 32), (1, 16, 16), (1, 28, 20)])
def test_output_shape(name: str, shape: tuple[int, int, int]) -> None:
    net = _build(name, shape, classes=7).eval()
    with torch.no_grad():
        out = net(torch.rand(2, *shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["resnet18", "preact-resnet18", "cla-net", "nin"])
def test_large_input(name: str) -> None:
    """A 224-pixel input takes the ImageNet path where there is one."""
    net = _build(name, (3, 224, 224), classes=5).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 224, 224)).shape == (1, 5)


@pytest.mark.parametrize("name", NAMES)
def test_split_at_every_feature_stage(name: str) -> None:
    net = _build(name).eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        want = net(x)
        for stage in net.feature_stages:
            front, back = net.split(stage)
            feats = front(x)
            assert feats.dim() == 4, stage
            torch.testing.assert_close(back(feats), want, msg=f"split at {stage}")


@pytest.mark.parametrize("name", NAMES)
def test_last_feature_stage_holds_last_conv(name: str) -> None:
    net = _build(name)
    stages = dict(net.stages.named_children())
    names = list(stages)
    last = net.feature_stages[-1]
    after = names[names.index(last) + 1 :]
    assert any(isinstance(m, nn.Conv2d) for m in stages[last].modules())
    for stage in after:
        assert not any(isinstance(m, nn.Conv2d) for m in stages[stage].modules()), stage
    order = [names.index(s) for s in net.feature_stages]
    assert order == sorted(order)


@pytest.mark.parametrize("name", NAMES)
def test_normalize_first_and_saved(name: str) -> None:
    net = _build(name).eval()
    assert next(iter(net.stages._modules)) == "normalize"
    state = net.state_dict()
    assert "stages.normalize.mean" in state and "stages.normalize.std" in state
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = net(x)
        net.normalize.set([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
        after = net(x)
    assert not torch.allclose(before, after)
    std = net.state_dict()["stages.normalize.std"].flatten()
    assert torch.equal(std, torch.tensor([0.2, 0.25, 0.3]))


@pytest.mark.parametrize("name", NAMES)
def test_build_is_deterministic(name: str) -> None:
    torch.manual_seed(123)
    a = _build(name).state_dict()
    torch.manual_seed(123)
    b = _build(name).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    torch.manual_seed(124)
    c = _build(name).state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name: str) -> None:
    net = _build(name).train()
    x = torch.rand(4, 3, 16, 16)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ValueError, match="nope") as err:
        build_model("nope", (3, 32, 32), 10)
    for name in MODELS:
        assert name in str(err.value)


def test_cla_net_matches_table_5() -> None:
    """Veldanda & Garg, Table 5: conv 16 5x5, pool, conv 4 5x5, pool, FC 512, FC classes."""
    net = build_model("cla-net", (3, 32, 32), 10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [c.weight.shape for c in convs] == [(16, 3, 5, 5), (4, 16, 5, 5)]
    assert all(c.stride == (1, 1) and c.padding == (0, 0) for c in convs)
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(2, 2), (2, 2)]
    # 32 -> 28 -> 14 -> 10 -> 5: 4 * 5 * 5 inputs to the first FC layer.
    assert [f.weight.shape for f in fcs] == [(512, 100), (10, 512)]
    gray = build_model("cla-net", (1, 16, 16), 4)
    assert [m.weight.shape for m in gray.modules() if isinstance(m, nn.Conv2d)][0] == (16, 1, 5, 5)


def test_cla_net_rejects_too_small_input() -> None:
    with pytest.raises(ValueError, match="16x16"):
        build_model("cla-net", (3, 15, 32), 10)
