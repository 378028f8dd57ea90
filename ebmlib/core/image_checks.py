"""Two checks every image chapter runs on a trained EBM: the energies of data, samples and noise (Fig. 2), and
whether samples copy their nearest training images (Fig. 20). Shared by chapters 03 and 04."""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import Tensor, nn

from ebmlib.core.images import ImageData
from ebmlib.core.metrics import nearest_neighbours

__all__ = ["energy_sets", "image_energies", "energy_means", "energy_line", "neighbour_rows", "nn_distances"]


def energy_sets(t, train: ImageData, x_test: Tensor, n: int,
                generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """Fig. 2's four sets: ``n`` training images (dequantised), test images, the trained model ``t``'s buffer
    samples, and uniform noise shaped like the test images."""
    noise = torch.rand(n, *x_test.shape[1:], generator=generator)
    return {"train": train.subset(n, generator).continuous(generator), "test": x_test[:n],
            "samples (buffer)": t.samples[:n], "uniform noise": noise}


@torch.no_grad()
def image_energies(model: nn.Module, sets: Mapping[str, Tensor],
                   batch_size: Optional[int] = None) -> dict[str, Tensor]:
    """E(x) of every image of each set, ``batch_size`` images at a time (None: each set at once)."""
    return {name: torch.cat([model(c) for c in x.split(batch_size or len(x))]) for name, x in sets.items()}


def energy_means(energies: Mapping[str, Tensor]) -> dict[str, float]:
    return {k: e.mean().item() for k, e in energies.items()}


def energy_line(means: Mapping[str, float]) -> str:
    return "mean energy: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())


def neighbour_rows(samples: Tensor, pool: Tensor, k: int = 3) -> dict[str, Tensor]:
    """Fig. 20: each sample followed by its ``k`` nearest images of ``pool`` (L2 in pixel space)."""
    _, idx = nearest_neighbours(samples, pool, k=k)
    return {f"sample {i}": torch.cat([samples[i:i + 1], pool[idx[i]]]) for i in range(len(samples))}


def nn_distances(samples: Tensor, test_x: Tensor, pool: Tensor) -> dict:
    """Median L2 distance to the nearest image of ``pool`` of the samples and of held-out test images."""
    return {"samples_median": nearest_neighbours(samples, pool)[0][:, 0].median().item(),
            "test_median": nearest_neighbours(test_x, pool)[0][:, 0].median().item()}
