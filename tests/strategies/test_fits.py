"""Fitted defenses in the artifact cache: a hit serves the same deployment, a stage shared by
pipelines is fitted once, and a deployment that cannot be stored is served uncached."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from arena.core.cache import ArtifactCache
from arena.data import Split, Splits
from arena.models import ArenaNet
from strategies import defense_class
from strategies.defenses import Defense, DefenseConfig, Deployment, build_defense
from strategies.defenses.fits import KIND, fit_key, model_digest

# small budgets, so that each fit takes a second or two on tiny data
FAST: dict[str, dict[str, Any]] = {
    "abs": {"steps": 20, "candidates": 3, "images_per_class": 1},
    "neural-cleanse": {"steps": 20, "max_classes": 4, "unlearn_epochs": 1},
    "strip": {"overlays": 8},
    "fine-pruning": {"epochs": 1},
}


def make(name: str, cache: ArtifactCache | None, seed: int = 0) -> Defense:
    cls = defense_class(name)
    return cls(dataclasses.replace(cls.config_cls(), **FAST[name]), seed=seed, cache=cache)


def fits(root: Path) -> list[Path]:
    return sorted(root.glob(f"{KIND}/*/*.safetensors"))


def assert_same(a: Deployment, b: Deployment, x: torch.Tensor) -> None:
    assert type(a) is type(b)
    assert a.flagged == b.flagged and a.details == b.details and a.named == b.named
    assert torch.equal(a.accept(x), b.accept(x))
    assert torch.equal(a.predict(x), b.predict(x))
    assert torch.equal(a.purify(x), b.purify(x))


@pytest.mark.parametrize("name", ["abs", "neural-cleanse", "strip", "fine-pruning"])
def test_a_cache_hit_serves_the_same_deployment(
    name: str, tiny: Splits, tiny_model: ArenaNet, tmp_path: Path
) -> None:
    cache = ArtifactCache(str(tmp_path))
    fitted = make(name, cache).fit(tiny_model, tiny.val)
    assert len(fits(tmp_path)) == 1 and cache.hits == 0
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    again = make(name, cache).fit(tiny_model, tiny.val)
    assert cache.hits == 1  # read back, not fitted again
    assert_same(fitted, again, tiny.test.x)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert again.model is not tiny_model
    modes = [(m.training, [p.requires_grad for p in m.parameters(recurse=False)])
             for m in fitted.model.modules()]  # fmt: skip
    assert modes == [
        (m.training, [p.requires_grad for p in m.parameters(recurse=False)])
        for m in again.model.modules()
    ]
    for field in dataclasses.fields(fitted):  # every field, e.g. ABS's reversed triggers
        mine, theirs = getattr(fitted, field.name), getattr(again, field.name)
        if isinstance(mine, torch.Tensor):
            assert torch.equal(mine, theirs), field.name
    panels = make(name, cache).show(again, tiny.val, tiny.test)
    assert [p.title for p in panels] == [p.title for p in make(name, None).show(
        fitted, tiny.val, tiny.test)]  # fmt: skip


def test_a_repair_stores_its_weights_and_a_detector_none(
    tiny: Splits, tiny_model: ArenaNet, tmp_path: Path
) -> None:
    """A detector serves the given model (no weights stored); Fine-pruning's repaired network,
    channel masks included, comes back with its weights."""
    cache = ArtifactCache(str(tmp_path))
    make("strip", cache).fit(tiny_model, tiny.val)
    make("fine-pruning", cache).fit(tiny_model, tiny.val)
    stored = [cache.load_tensors(KIND, p.name.split(".")[0]) for p in fits(tmp_path)]
    served = {r[1]["defense"]["name"]: (r[1]["model"]["served"], r[0]) for r in stored if r}
    assert served["strip"][0] == "given" and not any(
        k.startswith("model/") for k in served["strip"][1]
    )
    assert served["fine-pruning"][0] == "weights"
    assert any(k.endswith(".keep") for k in served["fine-pruning"][1])


def test_the_key_follows_the_weights_the_defense_the_seed_and_the_data(
    tiny: Splits, tiny_model: ArenaNet
) -> None:
    strip = make("strip", None).describe()
    key = fit_key(strip, 0, tiny_model, tiny.val)
    other = build_model_like(tiny_model)
    assert model_digest(other) != model_digest(tiny_model)
    assert fit_key(strip, 0, other, tiny.val) != key
    assert fit_key(strip, 1, tiny_model, tiny.val) != key
    assert fit_key(make("abs", None).describe(), 0, tiny_model, tiny.val) != key
    assert fit_key(strip, 0, tiny_model, tiny.val.subset(torch.arange(10))) != key
    eval_copy = build_model_like(tiny_model, same_weights=True).eval()
    assert fit_key(strip, 0, eval_copy, tiny.val) == key  # modes are not part of it
    bumped = {**strip, "version": strip["version"] + 1}  # a changed defense
    assert fit_key(bumped, 0, tiny_model, tiny.val) != key


def build_model_like(model: ArenaNet, *, same_weights: bool = False) -> ArenaNet:
    import copy

    twin = copy.deepcopy(model)
    if not same_weights:
        with torch.no_grad():
            next(twin.parameters()).add_(0.01)
    return twin


def test_a_stage_shared_by_pipelines_is_fitted_once(
    tiny: Splits, tiny_model: ArenaNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ArtifactCache(str(tmp_path))
    calls: list[str] = []
    for name in ("strip", "fine-pruning"):
        cls = defense_class(name)
        fit_copy = cls.fit_copy

        def spy(self: Defense, model: Any, clean: Split, fit_copy: Any = fit_copy) -> Deployment:
            calls.append(self.name)
            return fit_copy(self, model, clean)

        monkeypatch.setattr(cls, "fit_copy", spy)
    configs = [make(n, None).config for n in ("strip", "fine-pruning")]
    alone = make("strip", cache).fit(tiny_model, tiny.val)
    piped = build_defense(["strip", "fine-pruning"], configs, seed=0, cache=cache)
    first = piped.fit(tiny_model, tiny.val)
    assert calls == ["strip", "fine-pruning"]  # strip: read back, as fitted alone
    again = build_defense(["strip", "fine-pruning"], configs, seed=0, cache=cache)
    second = again.fit(tiny_model, tiny.val)
    assert calls == ["strip", "fine-pruning"]  # every stage read back
    # STRIP serves the model it was given, so the stage behind it was fitted on these weights
    make("fine-pruning", cache).fit(tiny_model, tiny.val)
    assert calls == ["strip", "fine-pruning"]
    x = tiny.test.x
    assert torch.equal(alone.accept(x), first.accept(x))
    assert_same(first, second, x)


@dataclass
class OpaqueDeployment(Deployment):
    """Serves through a function, which no record can hold."""

    rule: Any = None

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.rule(x)


class Opaque(Defense[DefenseConfig]):
    name = "opaque"
    version = 1
    summary = "a test defense whose deployment holds a closure"
    kind = "purifier"
    access = "black-box"
    fitted = 0

    def fit_copy(self, model: nn.Module, clean: Split) -> Deployment:
        Opaque.fitted += 1
        return OpaqueDeployment(model, details={"n": len(clean)}, rule=lambda x: x.new_zeros(
            len(x), dtype=torch.long))  # fmt: skip


def test_a_deployment_that_cannot_be_stored_is_served_uncached(
    tiny: Splits, tiny_model: ArenaNet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ArtifactCache(str(tmp_path))
    Opaque.fitted = 0
    with caplog.at_level(logging.DEBUG, logger="strategies.defenses.fits"):
        first = Opaque(cache=cache).fit(tiny_model, tiny.val)
    assert "not caching the fit of OpaqueDeployment" in caplog.text
    second = Opaque(cache=cache).fit(tiny_model, tiny.val)
    assert Opaque.fitted == 2 and fits(tmp_path) == []
    assert first.details == second.details == {"n": len(tiny.val)}
    assert not second.predict(tiny.test.x).any()


def test_an_unreadable_record_is_fitted_again(
    tiny: Splits, tiny_model: ArenaNet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record naming a class that is not a deployment (or no loaded class) is never built:
    the defense fits again, and the next read finds its new record."""
    cache = ArtifactCache(str(tmp_path))
    fitted = make("strip", cache).fit(tiny_model, tiny.val)
    key = fits(tmp_path)[0].name.split(".")[0]
    hit = cache.load_tensors(KIND, key)
    assert hit is not None
    cache.save_tensors(KIND, key, hit[0], {**hit[1], "class": "subprocess:Popen"})
    with caplog.at_level(logging.WARNING):
        again = make("strip", cache).fit(tiny_model, tiny.val)
    assert "cannot be read back" in caplog.text
    assert_same(fitted, again, tiny.test.x)
    assert cache.load_tensors(KIND, key)[1]["class"].endswith(":StripDeployment")  # type: ignore[index]
