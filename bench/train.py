"""Training throughput: Arena's loop against a typical DataLoader loop, and the share of peak.

Measures, in one run on this machine:

1. Arena's loop: ``arena.train.train_classifier`` on the ``digits`` train split with the
   default model (``small-cnn``) and ``TrainConfig()`` defaults (Adam, lr 3e-3, batch 64)
   except ``epochs``.
2. A reference loop written the way most research code is: a per-sample ``Dataset`` over uint8
   HWC images whose ``__getitem__`` does ``ToTensor`` + ``Normalize`` by hand, a
   ``DataLoader(batch_size=64, shuffle=True)`` with ``num_workers=0`` and ``2``, and the usual
   ``zero_grad / cross_entropy / backward / step`` with Adam at the same lr. Same images, same
   model, same epochs, same torch thread count.
3. The machine's float32 ``torch.mm`` GFLOP/s, and the share of it Arena's loop achieves
   (FLOPs per training image from forward hooks on every conv and linear layer, x3 for the
   forward and backward passes).

Each loop runs one untimed warm-up epoch, then ``--epochs`` timed ones (``time.perf_counter``);
the figure is the median over ``--repeats``. The loops are interleaved within each repeat so
that load from other processes spreads over all of them.

    python bench/train.py [--epochs N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from arena.data import load_dataset
from arena.data.splits import Split
from arena.models import DEFAULT_MODEL, build_model
from arena.train import TrainConfig, set_threads, train_classifier

BATCH_SIZE = 64
DATASET = "digits"


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class CpuMeter:
    """CPU used by *other* processes while a block runs, in cores (``/proc/stat`` busy time
    minus this process's and its reaped children's)."""

    def __enter__(self) -> CpuMeter:
        self._busy0, self._self0, self._t0 = _busy_seconds(), _self_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        other = (_busy_seconds() - self._busy0) - (_self_seconds() - self._self0)
        self.other_cores = max(0.0, other / wall) if wall > 0 else float("nan")


def _busy_seconds() -> float:
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _self_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Median float32 ``torch.mm`` throughput of two ``n x n`` matrices, in GFLOP/s."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / statistics.median(times) / 1e9


def flops_per_image(model: nn.Module, image_shape: tuple[int, int, int]) -> float:
    """Training FLOPs per image: 2 x the forward MACs of every conv and linear layer (read from
    forward hooks on one image), x3 for forward + backward."""
    macs = 0

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *image_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return 3.0 * 2.0 * macs


# --------------------------------------------------------------------------- the two loops


def arena_loop(
    split: Split, image_shape: tuple[int, int, int], num_classes: int, epochs: int, seed: int
) -> tuple[float, int]:
    """(seconds, images) of ``epochs`` timed epochs of Arena's loop after a warm-up epoch."""
    torch.manual_seed(seed)
    model = build_model(DEFAULT_MODEL, image_shape, num_classes)
    train_classifier(model, split, TrainConfig(epochs=1, batch_size=BATCH_SIZE), seed=seed)
    config = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE)
    start = time.perf_counter()
    result = train_classifier(model, split, config, seed=seed)
    seconds = time.perf_counter() - start
    if result.status != "ok":
        raise RuntimeError(f"Arena's loop {result.status}")
    return seconds, result.images


class ImageDataset(Dataset):
    """A decoded image dataset as research code holds one: uint8 (N, H, W, C) and int labels,
    each sample converted on access like torchvision's ``ToTensor()`` + ``Normalize``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        self.images = images
        self.labels = labels
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.images[index]
        x = torch.from_numpy(img.transpose((2, 0, 1))).contiguous()  # ToTensor: HWC -> CHW
        x = x.float().div(255)
        x = x.sub(self.mean).div(self.std)  # Normalize
        return x, int(self.labels[index])


def reference_dataset(split: Split) -> ImageDataset:
    images = (split.x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    images_np = np.ascontiguousarray(images.numpy())
    scaled = images_np.astype(np.float32) / 255
    mean = tuple(float(v) for v in scaled.mean(axis=(0, 1, 2)))
    std = tuple(float(v) for v in scaled.std(axis=(0, 1, 2)))
    return ImageDataset(images_np, split.y.numpy(), mean, std)


def reference_loop(
    dataset: ImageDataset,
    image_shape: tuple[int, int, int],
    num_classes: int,
    epochs: int,
    seed: int,
    num_workers: int,
) -> tuple[float, int]:
    """(seconds, images) of ``epochs`` timed epochs of the reference loop after a warm-up."""
    torch.manual_seed(seed)
    model = build_model(DEFAULT_MODEL, image_shape, num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=TrainConfig().lr)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=num_workers)
    model.train()

    def epoch() -> int:
        images = 0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            images += len(y)
        return images

    epoch()  # warm-up
    start = time.perf_counter()
    images = sum(epoch() for _ in range(epochs))
    return time.perf_counter() - start, images


def loader_only(dataset: ImageDataset, epochs: int, seed: int) -> tuple[float, int]:
    """(seconds, images) of ``epochs`` passes of the reference ``DataLoader`` (num_workers=0)
    with no model: the reference loop's data-pipeline cost on its own."""
    torch.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=0)

    def epoch() -> int:
        return sum(len(y) for _, y in loader)

    epoch()  # warm-up
    start = time.perf_counter()
    images = sum(epoch() for _ in range(epochs))
    return time.perf_counter() - start, images


# --------------------------------------------------------------------------- run and report


def measure(epochs: int, repeats: int, workers: tuple[int, ...]) -> dict[str, Any]:
    threads = set_threads()
    load_before = loadavg()
    splits = load_dataset(DATASET)
    shape, classes = splits.image_shape, splits.num_classes
    dataset = reference_dataset(splits.train)

    runs: dict[str, list[float]] = {"arena": []} | {f"reference_w{w}": [] for w in workers}
    loops: dict[str, Callable[[int], tuple[float, int]]] = {
        "arena": lambda seed: arena_loop(splits.train, shape, classes, epochs, seed)
    }
    for w in workers:
        loops[f"reference_w{w}"] = lambda seed, w=w: reference_loop(
            dataset, shape, classes, epochs, seed, w
        )
    runs["loader_only_w0"] = []
    loops["loader_only_w0"] = lambda seed: loader_only(dataset, epochs, seed)
    with CpuMeter() as meter:
        peak = matmul_gflops()
        for r in range(repeats):
            for name, loop in loops.items():
                seconds, images = loop(r)
                runs[name].append(images / seconds)
        peak_after = matmul_gflops()
    peak = max(peak, peak_after)  # the better of two, each a median of 5

    ips = {name: statistics.median(v) for name, v in runs.items()}
    data_only = ips.pop("loader_only_w0")
    # If a loop paid nothing for data, its time per image would be the reference's minus the
    # loader's: what removing the data pipeline alone would gain over the reference.
    ref_share = ips["reference_w0"] / data_only if 0 in workers else float("nan")
    ceiling = 1.0 / (1.0 - ref_share) if ref_share < 1.0 else float("inf")
    fpi = flops_per_image(build_model(DEFAULT_MODEL, shape, classes), shape)
    achieved = ips["arena"] * fpi / 1e9
    best_ref = max(ips[f"reference_w{w}"] for w in workers)
    return {
        "dataset": DATASET,
        "model": DEFAULT_MODEL,
        "train_images": len(splits.train),
        "image_shape": list(shape),
        "batch_size": BATCH_SIZE,
        "epochs": epochs,
        "repeats": repeats,
        "images_per_second": ips,
        "images_per_second_runs": runs,
        "ratio_arena_over_reference": {
            name: ips["arena"] / v for name, v in ips.items() if name != "arena"
        },
        "ratio_arena_over_best_reference": ips["arena"] / best_ref,
        "reference_loader_only_images_per_second": data_only,
        "reference_w0_data_share_of_time": ref_share,
        "ratio_ceiling_from_data_pipeline": ceiling,
        "matmul_gflops": peak,
        "train_flops_per_image": fpi,
        "arena_achieved_gflops": achieved,
        "arena_share_of_matmul_peak": achieved / peak,
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": loadavg(),
        "other_processes_cores_during_run": meter.other_cores,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def print_table(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ips = res["images_per_second"]
    ratio = res["ratio_arena_over_reference"]
    table = Table(
        title=f"Training throughput: {res['model']} on {res['dataset']} "
        f"({res['train_images']} images {tuple(res['image_shape'])}), batch {res['batch_size']}, "
        f"{res['epochs']} epochs, median of {res['repeats']}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("Arena loop (train_classifier)", f"{ips['arena']:,.0f} images/s")
    for name, v in ips.items():
        if name == "arena":
            continue
        w = name.removeprefix("reference_w")
        table.add_row(f"reference DataLoader loop, num_workers={w}", f"{v:,.0f} images/s")
        table.add_row(f"  Arena / reference (num_workers={w})", f"{ratio[name]:.2f}x")
    table.add_row(
        "reference DataLoader alone (no model), num_workers=0",
        f"{res['reference_loader_only_images_per_second']:,.0f} images/s",
    )
    table.add_row(
        "  its share of the reference loop's time (w=0)",
        f"{100 * res['reference_w0_data_share_of_time']:.0f}%",
    )
    table.add_row(
        "  Arena / reference if only that time were saved",
        f"{res['ratio_ceiling_from_data_pipeline']:.2f}x",
    )
    table.add_row("matmul peak (float32 torch.mm 2048^2)", f"{res['matmul_gflops']:.1f} GFLOP/s")
    mflops = res["train_flops_per_image"] / 1e6
    table.add_row("training FLOPs per image (fwd+bwd)", f"{mflops:.2f} M")
    table.add_row("Arena achieved", f"{res['arena_achieved_gflops']:.2f} GFLOP/s")
    table.add_row("Arena share of matmul peak", f"{100 * res['arena_share_of_matmul_peak']:.1f}%")
    table.add_row("torch threads", str(res["torch_threads"]))
    table.add_row("CPU", f"{res['cpu_model']} ({res['cpu_count']} cores)")
    table.add_row("torch", res["torch_version"])
    table.add_row(
        "load (1-min avg before / after)",
        f"{res['loadavg_1min_before']:.2f} / {res['loadavg_1min_after']:.2f}",
    )
    table.add_row(
        "other processes' CPU during run", f"{res['other_processes_cores_during_run']:.2f} cores"
    )
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="timed epochs per loop (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the median is reported")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 2],
        help="DataLoader num_workers values for the reference loop (default 0 2)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        parser.error("--epochs and --repeats must be at least 1")
    res = measure(args.epochs, args.repeats, tuple(args.workers))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)


if __name__ == "__main__":
    main()
