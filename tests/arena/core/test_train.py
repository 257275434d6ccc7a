"""The one training loop: it learns, it is seeded, every recipe choice runs, divergence is a
status rather than an exception."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from collections.abc import Iterator

import pytest
import torch

import arena.core.train
from arena.core.config import searchable_fields
from arena.core.train import (
    TrainConfig,
    init_weights,
    lr_factor,
    make_optimizer,
    set_preprocessing,
    train_classifier,
)
from arena.data.splits import Split
from arena.models import ArenaNet, build_model

SHAPE = (3, 16, 16)
FAST = TrainConfig(epochs=4, batch_size=32, lr=3e-3)


def _separable(n: int, seed: int) -> Split:
    """Two classes of noisy images: class 0 is brighter on the left half, class 1 on the
    right; channels have different offsets so standardising has work to do."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.3 * torch.rand(n, *SHAPE, generator=g)
    half = SHAPE[2] // 2
    x[y == 0, :, :, :half] += 0.5
    x[y == 1, :, :, half:] += 0.5
    x += torch.tensor([0.0, 0.1, 0.2]).view(1, 3, 1, 1)
    return Split(x.clamp(0, 1), y)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Train on one thread: on a shared two-core machine, two OpenMP threads competing with
    another busy process run these tiny steps ~50x slower. ``test_set_threads`` covers the
    real ``set_threads``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(arena.core.train, "set_threads", lambda: 1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def train_split() -> Split:
    return _separable(192, seed=0)


def _net(seed: int = 0) -> ArenaNet:
    torch.manual_seed(seed)
    return build_model("small-cnn", SHAPE, 2)


def _weights(model: ArenaNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_learns_a_separable_problem(train_split: Split) -> None:
    model = _net()
    result = train_classifier(model, train_split, FAST, seed=0)
    assert result.status == "ok" and result.epochs == FAST.epochs
    assert result.steps == FAST.epochs * (len(train_split) // FAST.batch_size)
    assert result.images == result.steps * FAST.batch_size
    assert result.history[-1] < result.history[0]
    test = _separable(200, seed=1)
    with torch.no_grad():
        acc = float((model(test.x).argmax(1) == test.y).float().mean())
    assert acc >= 0.95
    assert not model.training


def test_same_seed_same_weights_other_seed_other_weights(train_split: Split) -> None:
    config = dataclasses.replace(FAST, epochs=2)
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        model = _net(seed=0)  # same starting weights: only the training seed differs
        result = train_classifier(model, train_split, config, seed=seed)
        runs[name] = (_weights(model), result.history)
    wa, ha = runs["a"]
    wb, hb = runs["b"]
    wc, _ = runs["c"]
    assert ha == hb
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_weight_init_is_seeded() -> None:
    a, b, c = _net(0), _net(1), _net(2)
    init_weights(a, "kaiming", seed=5)
    init_weights(b, "kaiming", seed=5)
    init_weights(c, "kaiming", seed=6)
    key = "stages.conv1.0.weight"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], c.state_dict()[key])


def _choices() -> list[tuple[str, object]]:
    return [
        (f.name, choice)
        for f, rng in searchable_fields(TrainConfig)
        if rng.choices is not None
        for choice in rng.choices
    ]


def test_choice_fields_cover_the_recipe() -> None:
    names = {name for name, _ in _choices()}
    assert {"optimizer", "weight_init", "preprocessing", "augmentation", "schedule"} <= names


@pytest.mark.parametrize(("name", "choice"), _choices(), ids=[f"{n}={c}" for n, c in _choices()])
def test_every_choice_runs(train_split: Split, name: str, choice: object) -> None:
    small = train_split.subset(torch.arange(64))
    config = dataclasses.replace(TrainConfig(epochs=2, batch_size=32), **{name: choice})
    model = _net()
    before = _weights(model)
    result = train_classifier(model, small, config, seed=0)
    assert result.status == "ok"
    assert len(result.history) == 2 and all(math.isfinite(v) for v in result.history)
    assert result.steps == 2 * (64 // min(config.batch_size, 64))
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if "weight" in k)


def test_divergence_is_a_status(train_split: Split) -> None:
    def poison(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * float("nan"), y

    calls: list[int] = []
    model = _net()
    config = dataclasses.replace(FAST, epochs=5)
    result = train_classifier(
        model, train_split, config, seed=0, batch_hook=poison, callback=lambda e, _: calls.append(e)
    )
    assert result.status == "diverged"
    assert result.epochs == 1 and len(result.history) == 1
    assert not math.isfinite(result.final_loss)
    assert calls == []  # no progress is reported for a diverged epoch


def test_huge_sgd_learning_rate_diverges_without_raising(train_split: Split) -> None:
    config = TrainConfig(optimizer="sgd", lr=1e6, epochs=5, batch_size=32)
    result = train_classifier(_net(), train_split, config, seed=0)
    assert result.status == "diverged"
    assert result.epochs < 5 or not math.isfinite(result.final_loss)


def test_callback_once_per_epoch_with_finite_loss(train_split: Split) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    config = dataclasses.replace(FAST, epochs=3)
    result = train_classifier(
        _net(), train_split, config, seed=0, callback=lambda e, m: seen.append((e, dict(m)))
    )
    assert [e for e, _ in seen] == [1, 2, 3]
    assert all(math.isfinite(m["loss"]) and m["loss"] > 0 for _, m in seen)
    assert [m["loss"] for _, m in seen] == result.history


def test_batch_hook_sees_every_batch(train_split: Split) -> None:
    sizes: list[int] = []

    def hook(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sizes.append(len(x))
        return x, torch.zeros_like(y)  # every label becomes 0

    model = _net()
    result = train_classifier(model, train_split, dataclasses.replace(FAST, epochs=2), seed=0,
                              batch_hook=hook)
    assert len(sizes) == result.steps and set(sizes) == {FAST.batch_size}
    with torch.no_grad():
        assert float((model(train_split.x).argmax(1) == 0).float().mean()) > 0.95


def test_lr_factor_shapes() -> None:
    epochs = 10
    assert [lr_factor("constant", e, epochs) for e in range(epochs)] == [1.0] * epochs
    step = [lr_factor("step", e, epochs) for e in range(epochs)]
    assert step == [1.0] * 4 + [0.5] * 3 + [0.1] * 3
    cosine = [lr_factor("cosine", e, epochs) for e in range(epochs)]
    assert cosine[0] == 1.0
    assert cosine[5] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(cosine, cosine[1:], strict=False))
    assert 0.0 < cosine[-1] < 0.05
    assert lr_factor("cosine", epochs, epochs) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor("warmup", 0, epochs)


def test_unknown_choices_are_one_line_errors() -> None:
    model = _net()
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(list(model.parameters()), dataclasses.replace(FAST, optimizer="lbfgs"))
    with pytest.raises(ValueError, match="weight_init"):
        init_weights(model, "orthogonal", seed=0)
    with pytest.raises(ValueError, match="preprocessing"):
        set_preprocessing(model, torch.rand(4, *SHAPE), "whiten")
    with pytest.raises(ValueError, match="empty"):
        train_classifier(model, Split(torch.zeros(0, *SHAPE), torch.zeros(0, dtype=torch.long)),
                         FAST, seed=0)


@pytest.mark.parametrize(
    ("scheme", "mean", "std"),
    [("unit", None, None), ("center", 0.0, None), ("standardize", 0.0, 1.0)],
)
def test_preprocessing(
    train_split: Split, scheme: str, mean: float | None, std: float | None
) -> None:
    model = _net()
    set_preprocessing(model, train_split.x, scheme)
    with torch.no_grad():
        z = model.normalize(train_split.x)
    if scheme == "unit":
        assert torch.equal(z, train_split.x)
    if scheme == "center":
        torch.testing.assert_close(z, 2 * train_split.x - 1)
    if mean is not None and scheme == "standardize":
        channel_mean = z.mean(dim=(0, 2, 3))
        assert torch.allclose(channel_mean, torch.zeros(3), atol=1e-4), channel_mean
        assert torch.allclose(z.std(dim=(0, 2, 3)), torch.full((3,), float(std)), atol=1e-3)
        raw_mean = train_split.x.mean(dim=(0, 2, 3))
        assert raw_mean[2] - raw_mean[0] > 0.1  # the raw channels were not zero-mean


def test_set_threads_uses_every_allowed_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real set_threads, not the autouse stand-in
    want = len(os.sched_getaffinity(0))
    try:
        assert arena.core.train.set_threads() == want
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(1)


def test_model_comes_back_contiguous(train_split: Split) -> None:
    """Training runs in channels_last; model files (safetensors) need contiguous tensors."""
    model = _net()
    train_classifier(model, train_split, dataclasses.replace(FAST, epochs=1), seed=0)
    assert all(t.is_contiguous() for t in model.state_dict().values())


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_adam_and_sgd_are_fused(name: str) -> None:
    optimizer = make_optimizer(list(_net().parameters()), dataclasses.replace(FAST, optimizer=name))
    assert optimizer.defaults["fused"] is True


def _fresh_compile_state(monkeypatch: pytest.MonkeyPatch, enabled: bool | None) -> None:
    monkeypatch.setattr(arena.core.train, "_compile_setting", enabled)
    monkeypatch.setattr(arena.core.train, "_compile_failure", None)
    monkeypatch.setattr(arena.core.train, "_compiled", None)
    monkeypatch.setattr(arena.core.train, "_compile_seconds", {})


def test_compile_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh_compile_state(monkeypatch, None)
    monkeypatch.delenv("ARENA_COMPILE", raising=False)
    assert not arena.core.train.compile_enabled()
    monkeypatch.setenv("ARENA_COMPILE", "1")
    assert arena.core.train.compile_enabled()
    arena.core.train.set_compile(False)
    assert not arena.core.train.compile_enabled()


def test_compile_failure_falls_back_to_eager_with_one_log_line(
    train_split: Split, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_compiler(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler\nsecond line")

    config = dataclasses.replace(FAST, epochs=2)
    _fresh_compile_state(monkeypatch, False)
    eager = _net()
    eager_result = train_classifier(eager, train_split, config, seed=0)

    _fresh_compile_state(monkeypatch, True)
    monkeypatch.setattr(torch, "compile", no_compiler)
    with caplog.at_level("WARNING", logger="arena.core.train"):
        models = [_net(), _net()]
        results = [train_classifier(m, train_split, config, seed=0) for m in models]
    lines = [r.getMessage() for r in caplog.records if r.name == "arena.core.train"]
    assert lines == ["torch.compile unavailable (RuntimeError: no C++ compiler); training eagerly"]
    assert not arena.core.train.compile_enabled()
    for model, result in zip(models, results, strict=True):
        assert result.history == eager_result.history  # the same eager training, unchanged
        assert all(torch.equal(v, eager.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
@pytest.mark.skipif(
    not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")), reason="no C++ compiler"
)
def test_compiled_training_is_seeded_and_reused(
    train_split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiled once per network and batch shape, reused by the next model; the same seed gives
    the same weights; the result matches eager training up to float reassociation."""
    config = dataclasses.replace(FAST, epochs=2)
    _fresh_compile_state(monkeypatch, False)
    eager = _net()
    eager_history = train_classifier(eager, train_split, config, seed=0).history

    _fresh_compile_state(monkeypatch, True)
    runs = []
    for _ in range(2):
        model = _net()
        result = train_classifier(model, train_split, config, seed=0)
        assert result.status == "ok"
        runs.append((_weights(model), result.history))
    if not arena.core.train.compile_enabled():
        pytest.skip(f"torch.compile unavailable here: {arena.core.train._compile_failure}")
    # the second model reused the first's graphs
    assert len(arena.core.train.compile_seconds()) == 1
    (wa, ha), (wb, hb) = runs
    assert ha == hb and all(torch.equal(wa[k], wb[k]) for k in wa)
    # Adam's steps are about lr whatever the gradient's size, so weights whose gradient is
    # near zero can part by a few lr; the losses and predictions stay together.
    assert ha == pytest.approx(eager_history, rel=0.02)
    compiled = _net()
    compiled.load_state_dict(wa)
    with torch.no_grad():
        agree = compiled(train_split.x).argmax(1) == eager(train_split.x).argmax(1)
    assert float(agree.float().mean()) >= 0.98
    assert all(t.is_contiguous() for t in wa.values())


def test_compiled_step_is_built_once_per_network_and_shape(
    train_split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stand-in compiler: one compilation per (network, batch shape), none for a second
    model of the same kind, and compiling neither changes the model nor draws random numbers."""
    compiled: list[object] = []

    def fake_compile(fn: object, **kwargs: object) -> object:
        compiled.append(fn)
        return fn

    _fresh_compile_state(monkeypatch, True)
    monkeypatch.setattr(torch, "compile", fake_compile)
    config = dataclasses.replace(FAST, epochs=1)
    histories = []
    for arch, batch in (("small-cnn", 32), ("small-cnn", 32), ("cla-net", 32), ("small-cnn", 64)):
        torch.manual_seed(0)
        model = build_model(arch, SHAPE, 2)
        result = train_classifier(
            model, train_split, dataclasses.replace(config, batch_size=batch), seed=0
        )
        assert result.status == "ok"
        histories.append(result.history)
    assert len(compiled) == 1  # torch.compile is called once; dynamo keys graphs itself
    keys = list(arena.core.train.compile_seconds())
    assert [(k[1][0]) for k in keys] == [32, 32, 64]  # small-cnn 32, cla-net 32, small-cnn 64
    assert arena.core.train.compile_enabled()

    _fresh_compile_state(monkeypatch, False)
    torch.manual_seed(0)
    eager = build_model("small-cnn", SHAPE, 2)
    assert train_classifier(eager, train_split, config, seed=0).history == histories[0]
