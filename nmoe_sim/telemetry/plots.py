"""Figures written into the run directory."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np


def gating_heatmap(frequency: np.ndarray, title: str, path: Path) -> None:
    """Client x expert routing frequency (rows sum to 1)."""
    clients, experts = frequency.shape
    # Capped: a cell per client stops being readable long before the canvas stops growing (at
    # 200 clients an uncapped figure was 10,000 pixels square and took 3 GB to draw).
    size = min(14.0, max(4.0, 0.45 * max(clients, experts) + 2))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(frequency, vmin=0, vmax=1, cmap="viridis")
    ax.set_title(title)
    ax.set_xlabel("expert (hosting client)")
    ax.set_ylabel("client (gate)")
    if max(clients, experts) <= 20:
        ax.set_xticks(range(experts))
        ax.set_yticks(range(clients))
    fig.colorbar(im, ax=ax, label="routing frequency on the client's test split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
