"""Drawing a defense's panels (``Defense.show``) into one PNG, for ``arena show-defense``.

Each :class:`~strategies.defenses.base.Panel` becomes one band of the figure, top to bottom,
under its title: an ``images`` panel as a grid of at most ``MAX_COLUMNS`` images per row with
their labels, a ``histogram`` panel as overlaid histograms on shared bins with its marker as a
dashed vertical line (its ``labels`` name the x axis, then the marker). The PNG records the
figure's title and the panel titles (a JSON list) in its ``Title`` and ``Description`` text
fields, so a reader can tell what it holds without looking. Matplotlib draws off-screen
(``Figure`` and the Agg canvas; no pyplot state).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAX_COLUMNS = 10
IMAGE_INCHES = 1.25
HISTOGRAM_INCHES = 3.0
TITLE_INCHES = 0.5


def panel_rows(panel: Any) -> int:
    """Rows of images an ``images`` panel takes (a histogram counts as none)."""
    return math.ceil(len(panel.data) / MAX_COLUMNS) if panel.kind == "images" else 0


def render_panels(panels: Sequence[Any], path: str | Path, *, title: str) -> Path:
    """Write ``panels`` as one PNG at ``path`` (parent folders made); returns the path."""
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("there are no panels to draw")
    heights = [
        TITLE_INCHES + (panel_rows(p) * IMAGE_INCHES if p.kind == "images" else HISTOGRAM_INCHES)
        for p in panels
    ]
    columns = max([min(MAX_COLUMNS, len(p.data)) for p in panels if p.kind == "images"] or [1])
    width = max(7.0, columns * IMAGE_INCHES + 0.5)
    fig = Figure(figsize=(width, sum(heights) + TITLE_INCHES), layout="constrained")
    fig.suptitle(title, fontsize=11, fontweight="bold")
    bands = fig.subfigures(len(panels), 1, height_ratios=heights, squeeze=False)[:, 0]
    for band, panel in zip(bands, panels, strict=True):
        band.suptitle(panel.title, fontsize=9)
        if panel.kind == "images":
            _draw_images(band, panel)
        elif panel.kind == "histogram":
            _draw_histogram(band, panel)
        else:
            raise ValueError(f"unknown panel kind {panel.kind!r}; use images or histogram")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Title": title, "Description": json.dumps([p.title for p in panels])}
    fig.savefig(out, dpi=100, metadata=metadata)
    return out


def _draw_images(band: Any, panel: Any) -> None:
    images = torch.as_tensor(panel.data).detach().float().clamp(0.0, 1.0)
    if images.ndim != 4:
        raise ValueError(f"panel {panel.title!r}: images must be (N, C, H, W)")
    rows, cols = panel_rows(panel), min(MAX_COLUMNS, len(images))
    axes = band.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.set_axis_off()
            continue
        img = images[i].permute(1, 2, 0).numpy()
        if img.shape[2] == 1:
            ax.imshow(img[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
        if i < len(panel.labels):
            ax.set_xlabel(panel.labels[i], fontsize=7)


def _draw_histogram(band: Any, panel: Any) -> None:
    ax = band.subplots()
    series = {
        name: torch.as_tensor(v).detach().float().flatten().numpy()
        for name, v in panel.data.items()
    }
    values = np.concatenate([v for v in series.values() if v.size] or [np.zeros(1)])
    low, high = float(values.min()), float(values.max())
    if panel.marker is not None:
        low, high = min(low, panel.marker), max(high, panel.marker)
    bins = np.linspace(low, high if high > low else low + 1.0, 31)
    for name, v in series.items():
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name} ({v.size})")
    if panel.marker is not None:
        name = f"{panel.labels[1]} " if len(panel.labels) > 1 else ""
        ax.axvline(panel.marker, color="black", linestyle="--", label=f"{name}{panel.marker:.3g}")
    if panel.labels:
        ax.set_xlabel(panel.labels[0], fontsize=8)
    ax.set_ylabel("inputs", fontsize=8)
    ax.legend(fontsize=7)
