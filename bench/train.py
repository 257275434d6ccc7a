"""Training throughput: Arena's loop against typical DataLoader loops, and the share of peak.

Measures, in one run on this machine:

1. Arena's loop: ``arena.core.train.train_classifier`` on the ``digits`` train split with the
   default model (``small-cnn``) and ``TrainConfig()`` defaults (Adam, lr 3e-3, batch 64)
   except ``epochs``; once eager (the default) and once compiled (``ARENA_COMPILE=1``), with the
   compile time reported apart from the throughput.
2. Reference loops written the way most research code is: a per-sample ``Dataset`` whose
   ``__getitem__`` converts one image, a ``DataLoader(batch_size=64, shuffle=True)``, and the
   usual ``zero_grad / cross_entropy / backward / step`` with Adam at the same lr. Two datasets:
   uint8 HWC images converted by hand-written tensor ops (``ToTensor`` + ``Normalize``; with
   ``num_workers`` 0 and 2), and torchvision's ``CIFAR10`` way (``Image.fromarray``, then
   torchvision's ``ToTensor`` and ``Normalize`` code, transcribed; ``num_workers=0``). Same
   images, model, epochs, batch size and torch thread count as Arena's loop.
3. The machine's float32 ``torch.mm`` GFLOP/s, and the share of it Arena's loop achieves
   (FLOPs per training image from forward hooks on every conv and linear layer, x3 for the
   forward and backward passes).
4. The compute floor: the time of the model's convolution and matmul kernels alone (forward,
   and backward as training runs it) per batch, replayed in isolation in the faster memory
   format, and so the most any loop running those kernels could beat the reference by.

Each loop runs one untimed warm-up epoch, then ``--epochs`` timed epochs (``time.perf_counter``);
the figure is the median over ``--repeats``. The loops are interleaved within each repeat so
that load from other processes spreads over all of them.

    python bench/train.py [--epochs N] [--repeats R] [--json] [--cold-compile]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from arena.core.train import (
    TrainConfig,
    compile_enabled,
    compile_seconds,
    set_compile,
    set_threads,
    train_classifier,
)
from arena.data import load_dataset
from arena.data.splits import Split
from arena.models import DEFAULT_MODEL, build_model

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


def compute_floor(
    model: nn.Module, image_shape: tuple[int, int, int], batch: int, repeats: int = 30
) -> dict[str, float]:
    """Seconds per training step of the model's conv and linear kernels alone: each layer's
    forward and its backward (weight and bias gradients, and the input gradient where training
    needs one: not for a first layer fed by the data), timed in isolation on that layer's real
    input shape, in the faster of the NCHW and channels_last layouts (median of ``repeats``)."""
    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        calls.append((module, inputs[0].detach().requires_grad_(inputs[0].requires_grad)))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        model.train()
        model(torch.rand(batch, *image_shape))
    finally:
        for h in handles:
            h.remove()

    def timed(fn: Callable[[], Any]) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def layer_seconds(module: nn.Module, x: torch.Tensor, fmt: torch.memory_format) -> float:
        need_input_grad = bool(x.requires_grad)
        if isinstance(module, nn.Conv2d):
            x = x.detach().contiguous(memory_format=fmt)
            w = module.weight.detach().contiguous(memory_format=fmt)
            b = module.bias.detach() if module.bias is not None else None
            out = F.conv2d(x, w, b, module.stride, module.padding, module.dilation, module.groups)
            grad = torch.randn_like(out)
            mask = [need_input_grad, True, b is not None]
            bias_sizes = [w.shape[0]] if b is not None else None

            def forward() -> Any:
                return F.conv2d(
                    x, w, b, module.stride, module.padding, module.dilation, module.groups
                )

            def backward() -> Any:
                return torch.ops.aten.convolution_backward(
                    grad,
                    x,
                    w,
                    bias_sizes,
                    module.stride,
                    module.padding,
                    module.dilation,
                    False,
                    [0, 0],
                    module.groups,
                    mask,
                )

            return timed(forward) + timed(backward)
        assert isinstance(module, nn.Linear)
        x2 = x.detach().flatten(1).contiguous()
        w2 = module.weight.detach()
        grad2 = torch.randn(x2.shape[0], w2.shape[0])

        def backward_linear() -> Any:
            gw = grad2.t().mm(x2)
            gx = grad2.mm(w2) if need_input_grad else None
            return gw, gx, grad2.sum(0)

        return timed(lambda: F.linear(x2, w2, module.bias)) + timed(backward_linear)

    with torch.no_grad():
        seconds = {
            name: sum(layer_seconds(m, x, fmt) for m, x in calls)
            for name, fmt in (
                ("nchw", torch.contiguous_format),
                ("channels_last", torch.channels_last),
            )
        }
    by_layout = {f"{k}_seconds": v for k, v in seconds.items()}
    return {"seconds_per_step": min(seconds.values()), **by_layout}


# --------------------------------------------------------------------------- the loops


class CompileUnavailable(RuntimeError):
    pass


def arena_loop(
    split: Split,
    image_shape: tuple[int, int, int],
    num_classes: int,
    epochs: int,
    seed: int,
    compiled: bool,
) -> tuple[float, float, int]:
    """(seconds, CPU seconds, images) of ``epochs`` timed epochs of Arena's loop after a
    warm-up epoch, eager or compiled (the first compiled warm-up compiles; its time is not in
    the figure). Raises :class:`CompileUnavailable` where compiling fell back to eager."""
    set_compile(compiled)
    try:
        torch.manual_seed(seed)
        model = build_model(DEFAULT_MODEL, image_shape, num_classes)
        train_classifier(model, split, TrainConfig(epochs=1, batch_size=BATCH_SIZE), seed=seed)
        if compiled and not compile_enabled():
            raise CompileUnavailable("torch.compile is unavailable here (see the log line)")
        config = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE)
        start, cpu = time.perf_counter(), time.process_time()
        result = train_classifier(model, split, config, seed=seed)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        set_compile(None)
    if result.status != "ok":
        raise RuntimeError(f"Arena's loop {result.status}")
    return seconds, cpu, result.images


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


class TorchvisionStyleDataset(Dataset):
    """torchvision's ``CIFAR10`` with ``Compose([ToTensor(), Normalize(mean, std)])``, as most
    research code trains: each sample becomes a PIL image (``Image.fromarray``), then
    torchvision's ``to_tensor`` and ``normalize`` (``inplace=False``) code, transcribed here
    because torchvision is not a dependency."""

    def __init__(self, base: ImageDataset) -> None:
        self.data = base.images
        self.targets = [int(v) for v in base.labels]
        self.mean = [float(v) for v in base.mean.flatten()]
        self.std = [float(v) for v in base.std.flatten()]

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[index], self.targets[index]
        img = Image.fromarray(img)
        return self.normalize(self.to_tensor(img)), target

    @staticmethod
    def to_tensor(pic: Image.Image) -> torch.Tensor:
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        img = img.view(pic.size[1], pic.size[0], len(pic.getbands()))
        img = img.permute((2, 0, 1)).contiguous()
        return img.to(dtype=torch.get_default_dtype()).div(255)

    def normalize(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        if (std == 0).any():
            raise ValueError("std evaluated to zero after conversion to float32")
        return tensor.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))


def reference_loop(
    dataset: Dataset,
    image_shape: tuple[int, int, int],
    num_classes: int,
    epochs: int,
    seed: int,
    num_workers: int,
) -> tuple[float, float, int]:
    """(seconds, CPU seconds, images) of ``epochs`` timed epochs of the reference loop after
    a warm-up (CPU seconds NaN with worker processes: their time is not this process's)."""
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
    start, cpu = time.perf_counter(), time.process_time()
    images = sum(epoch() for _ in range(epochs))
    cpu = time.process_time() - cpu if num_workers == 0 else float("nan")  # workers: not ours
    return time.perf_counter() - start, cpu, images


def loader_only(dataset: Dataset, epochs: int, seed: int) -> tuple[float, float, int]:
    """(seconds, images) of ``epochs`` passes of the reference ``DataLoader`` (num_workers=0)
    with no model: the reference loop's data-pipeline cost on its own."""
    torch.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=0)

    def epoch() -> int:
        return sum(len(y) for _, y in loader)

    epoch()  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    images = sum(epoch() for _ in range(epochs))
    return time.perf_counter() - start, time.process_time() - cpu, images


# --------------------------------------------------------------------------- run and report


def measure(
    epochs: int, repeats: int, workers: tuple[int, ...], compiled: bool = True
) -> dict[str, Any]:
    from torch._dynamo.utils import counters

    threads = set_threads()
    load_before = loadavg()
    splits = load_dataset(DATASET)
    shape, classes = splits.image_shape, splits.num_classes
    dataset = reference_dataset(splits.train)
    tv_dataset = TorchvisionStyleDataset(dataset)

    loops: dict[str, Callable[[int], tuple[float, float, int]]] = {
        "arena": lambda seed: arena_loop(splits.train, shape, classes, epochs, seed, False)
    }
    if compiled:
        loops["arena_compiled"] = lambda seed: arena_loop(
            splits.train, shape, classes, epochs, seed, True
        )
    for w in workers:
        loops[f"reference_w{w}"] = functools.partial(
            reference_loop, dataset, shape, classes, epochs, num_workers=w
        )
    loops["reference_torchvision_w0"] = lambda seed: reference_loop(
        tv_dataset, shape, classes, epochs, seed, 0
    )
    loops["loader_only_w0"] = lambda seed: loader_only(dataset, epochs, seed)
    loops["loader_only_torchvision_w0"] = lambda seed: loader_only(tv_dataset, epochs, seed)
    runs: dict[str, list[float]] = {name: [] for name in loops}
    cpu_runs: dict[str, list[float]] = {name: [] for name in loops}
    floor_model = build_model(DEFAULT_MODEL, shape, classes)
    with CpuMeter() as meter:
        peak = matmul_gflops()
        floor = compute_floor(floor_model, shape, BATCH_SIZE)
        for r in range(repeats):
            for name, loop in list(loops.items()):
                try:
                    seconds, cpu, images = loop(r)
                except CompileUnavailable:
                    del loops[name], runs[name], cpu_runs[name]
                    continue
                runs[name].append(images / seconds)
                cpu_runs[name].append(images / cpu)
        peak_after = matmul_gflops()
        floor_after = compute_floor(floor_model, shape, BATCH_SIZE)
    peak = max(peak, peak_after)  # the better of two, each a median of 5
    floor = min(floor, floor_after, key=lambda f: f["seconds_per_step"])

    ips = {name: statistics.median(v) for name, v in runs.items()}
    # Images per second of this process's CPU time (all its threads): time slices taken by other
    # processes do not count, so on a loaded machine these stay comparable where the wall-clock
    # figures do not (as long as the loop runs on one thread; NaN for loops with workers).
    cpu_ips = {
        name: statistics.median(v)
        for name, v in cpu_runs.items()
        if not name.startswith("loader_only") and all(math.isfinite(x) for x in v)
    }
    data_only = {
        "reference_w0": ips.pop("loader_only_w0"),
        "reference_torchvision_w0": ips.pop("loader_only_torchvision_w0"),
    }
    # If a loop paid nothing for data, its time per image would be the reference's minus the
    # loader's: what removing the data pipeline alone would gain over the reference.
    share = {name: ips[name] / v for name, v in data_only.items() if name in ips}
    arenas = [name for name in ips if name.startswith("arena")]
    references = [name for name in ips if name.startswith("reference")]
    fpi = flops_per_image(build_model(DEFAULT_MODEL, shape, classes), shape)
    floor_ips = BATCH_SIZE / floor["seconds_per_step"]
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
        "ratio": {a: {ref: ips[a] / ips[ref] for ref in references} for a in arenas},
        "cpu_time_images_per_second": cpu_ips,
        "cpu_time_ratio": {
            a: {ref: cpu_ips[a] / cpu_ips[ref] for ref in references if ref in cpu_ips}
            for a in arenas
        },
        "reference_loader_only_images_per_second": data_only,
        "reference_data_share_of_time": share,
        "ratio_ceiling_from_data_pipeline": {
            name: 1.0 / (1.0 - v) if v < 1.0 else float("inf") for name, v in share.items()
        },
        "compile_seconds": sorted(compile_seconds().values()),
        "compile_fx_graph_cache": {
            k: counters["inductor"].get(f"fxgraph_cache_{k}", 0) for k in ("hit", "miss")
        },
        "compute_floor_seconds_per_step": floor["seconds_per_step"],
        "compute_floor_seconds_per_step_by_layout": {
            k.removesuffix("_seconds"): v for k, v in floor.items() if k != "seconds_per_step"
        },
        "compute_floor_images_per_second": floor_ips,
        "ratio_ceiling_from_compute_floor": {ref: floor_ips / ips[ref] for ref in references},
        "matmul_gflops": peak,
        "train_flops_per_image": fpi,
        "achieved_gflops": {a: ips[a] * fpi / 1e9 for a in arenas},
        "share_of_matmul_peak": {a: ips[a] * fpi / 1e9 / peak for a in arenas},
        "compute_floor_share_of_matmul_peak": floor_ips * fpi / 1e9 / peak,
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


LABELS = {
    "arena": ("Arena loop (train_classifier), eager", "Arena eager"),
    "arena_compiled": ("Arena loop, compiled (ARENA_COMPILE=1)", "Arena compiled"),
    "reference_torchvision_w0": ("reference, torchvision-style PIL, w=0", "ref PIL w=0"),
}


def _label(name: str, short: bool = False) -> str:
    if name in LABELS:
        return LABELS[name][short]
    w = name.removeprefix("reference_w")
    return f"ref tensor w={w}" if short else f"reference, tensor transforms, num_workers={w}"


def print_table(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ips = res["images_per_second"]
    table = Table(
        title=f"Training throughput: {res['model']} on {res['dataset']} "
        f"({res['train_images']} images {tuple(res['image_shape'])}), batch {res['batch_size']}, "
        f"{res['epochs']} epochs, median of {res['repeats']}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, v in ips.items():
        table.add_row(_label(name), f"{v:,.0f} images/s")
    for arena, ratios in res["ratio"].items():
        for ref, r in ratios.items():
            table.add_row(f"  {_label(arena, True)} / {_label(ref, True)}", f"{r:.2f}x")
    threads = res["torch_threads"]
    for arena, ratios in res["cpu_time_ratio"].items():
        for ref, r in ratios.items():
            table.add_row(
                f"  by CPU time ({threads} thread(s)): {_label(arena, True)} / {_label(ref, True)}",
                f"{r:.2f}x",
            )
    if res["compile_seconds"]:
        cache = res["compile_fx_graph_cache"]
        table.add_row(
            "compile time (once per process and shape; not in the figures)",
            f"{sum(res['compile_seconds']):.1f} s (FX cache {cache['hit']} hit, "
            f"{cache['miss']} miss)",
        )
    for ref, v in res["reference_loader_only_images_per_second"].items():
        table.add_row(f"DataLoader alone (no model), {_label(ref, True)}", f"{v:,.0f} images/s")
        table.add_row(
            "  its share of that reference loop's time",
            f"{100 * res['reference_data_share_of_time'][ref]:.0f}%",
        )
        table.add_row(
            "  Arena / that reference if only that time were saved",
            f"{res['ratio_ceiling_from_data_pipeline'][ref]:.2f}x",
        )
    floor_ms = 1e3 * res["compute_floor_seconds_per_step"]
    table.add_row(
        "compute floor: conv + linear kernels alone per batch",
        f"{floor_ms:.2f} ms = {res['compute_floor_images_per_second']:,.0f} images/s",
    )
    for ref, r in res["ratio_ceiling_from_compute_floor"].items():
        table.add_row(f"  ceiling: floor / {_label(ref, True)}", f"{r:.2f}x")
    table.add_row("matmul peak (float32 torch.mm 2048^2)", f"{res['matmul_gflops']:.1f} GFLOP/s")
    mflops = res["train_flops_per_image"] / 1e6
    table.add_row("training FLOPs per image (fwd+bwd)", f"{mflops:.2f} M")
    for arena, g in res["achieved_gflops"].items():
        share = 100 * res["share_of_matmul_peak"][arena]
        table.add_row(f"{_label(arena, True)} achieved", f"{g:.1f} GFLOP/s = {share:.1f}% of peak")
    table.add_row(
        "compute floor achieved", f"{100 * res['compute_floor_share_of_matmul_peak']:.1f}% of peak"
    )
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
        help="DataLoader num_workers values for the tensor-transform reference (default 0 2)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="leave out the compiled Arena loop"
    )
    parser.add_argument(
        "--cold-compile",
        action="store_true",
        help="compile into an empty inductor cache (the first-ever compile's cost)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1:
        parser.error("--epochs and --repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="arena-inductor-") as cold_dir:
        if args.cold_compile:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cold_dir
        res = measure(args.epochs, args.repeats, tuple(args.workers), not args.no_compile)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)


if __name__ == "__main__":
    main()
