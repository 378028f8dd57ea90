"""Chapter 10: an image EBM as a prior for denoising, and its energy as an anomaly score (MNIST).

The model is chapter 03's unconditional MNIST EBM (the same recipe, so the same shipped checkpoint). Denoising
(:mod:`ebmlib.core.denoise`): descend E(x) + (lam / 2) ||x - x_noisy||^2 for several lam, against the paper's
Langevin restoration (A.7's sampler from the noisy image, section 4.2) and two classical filters. Anomaly
detection: the energy scores clean test digits against digits with local defects and against another data set,
next to the probabilistic-PCA Gaussian's negative log-likelihood and PCA's reconstruction error
(:mod:`ebmlib.core.scores`). Noise levels and defects are in pixel units of [0, 1] images.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from ebmlib.core.denoise import bayes_lambda, denoise, gaussian_noise, psnr
from ebmlib.core.image_ebm import load_or_train_models
from ebmlib.core.images import dequantize
from ebmlib.core.restore import restore
from ebmlib.core.scores import PCAGaussian, auroc, roc_curve
from ebmlib.core.train import frozen
from ebmlib.data.images import load_images

__all__ = ["load_model", "psnr_metrics", "example_methods", "fit_baseline", "clean_digits", "model_temperature",
           "denoising_grid", "classical_filters", "psnr_rows", "psnr_figure", "examples_figure", "lambda_sentence",
           "anomaly_sentence", "defects", "anomaly_scores", "anomaly_rows", "roc_figure", "best_lambda"]


def load_model(cfg, seed: int, out_dir) -> tuple[str, object]:
    """The preset's one model (chapter 03's recipe): (name, Trained), from its checkpoint or trained."""
    models = load_or_train_models(cfg.models, lambda name: load_images(name, "train"), seed,
                                  out_dir=out_dir, progress=cfg.progress)
    (name, trained), = models.items()
    trained.model.eval()
    return name, trained


def fit_baseline(images: Tensor, n_components: int, n: int, generator: torch.Generator) -> PCAGaussian:
    """The probabilistic-PCA Gaussian on ``n`` dequantised training digits."""
    return PCAGaussian(n_components).fit(clean_digits(images, n, generator))


def psnr_metrics(grid: Mapping) -> dict:
    """The grid without its images, for the metrics file."""
    return {str(s): {k: v for k, v in row.items() if k != "images"} for s, row in grid.items()}


def example_methods(grid: Mapping, std: float, lams: Sequence[float]) -> list[str]:
    return ["noisy", "blur", "Langevin (A.7)", "lam=0", f"lam={best_lambda(grid[std], lams):g}"]


def clean_digits(images: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """The first ``n`` uint8 images, dequantised to [0, 1] as the model saw its data (A.3)."""
    return dequantize(images[:n], generator)


def model_temperature(train_cfg: Mapping) -> float:
    """T = noise_std^2 / (2 step) of the sampler the model was trained with (A.7 defaults: 0.005, 10)."""
    return train_cfg.get("noise_std", 0.005) ** 2 / (2 * train_cfg.get("step_size", 10.0))


def _mean_se(v: Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / len(v) ** 0.5) if len(v) > 1 else float("nan")


def denoising_grid(model: nn.Module, clean: Tensor, stds: Sequence[float], lams: Sequence[float], n_steps: int,
                   step_size: float, langevin_steps: int, seed: int) -> dict:
    """PSNR (mean, SE over images) of the noisy input, of energy descent at each lam, and of the paper's
    Langevin restoration, per noise level; the restored images are kept for the figures."""
    out = {}
    for i, std in enumerate(stds):
        noisy = gaussian_noise(clean, std, torch.Generator().manual_seed(seed + i))
        row = {"noisy": _mean_se(psnr(noisy, clean)), "images": {"noisy": noisy}}
        for lam in lams:
            x = denoise(model, noisy, lam, n_steps, step_size)
            row[f"lam={lam:g}"], row["images"][f"lam={lam:g}"] = _mean_se(psnr(x, clean)), x
        x = restore(model, noisy, langevin_steps, generator=torch.Generator().manual_seed(seed + 100 + i))
        row["Langevin (A.7)"], row["images"]["Langevin (A.7)"] = _mean_se(psnr(x, clean)), x
        out[std] = row
    return out


def classical_filters(clean: Tensor, grid: Mapping, blur_sigmas: Sequence[float]) -> None:
    """Adds to each noise level of ``grid`` the Gaussian blur with the best of ``blur_sigmas`` on these images
    (an oracle choice, as the best lam is) and a 3x3 median filter."""
    from scipy import ndimage

    for row in grid.values():
        noisy = row["images"]["noisy"].numpy()
        best = None
        for s in blur_sigmas:
            x = torch.from_numpy(ndimage.gaussian_filter(noisy, sigma=(0, 0, s, s)))
            score = _mean_se(psnr(x, clean))
            if best is None or score[0] > best[1][0]:
                best = (s, score, x)
        row["blur"], row["images"]["blur"], row["blur_sigma"] = best[1], best[2], best[0]
        med = torch.from_numpy(ndimage.median_filter(noisy, size=(1, 1, 3, 3)))
        row["median 3x3"], row["images"]["median 3x3"] = _mean_se(psnr(med, clean)), med


def best_lambda(row: Mapping, lams: Sequence[float]) -> float:
    return max(lams, key=lambda lam: row[f"lam={lam:g}"][0])


def psnr_rows(grid: Mapping, lams: Sequence[float], temperature: float) -> tuple[list[str], list[list]]:
    """One row per noise level: PSNR of every method, the best lam and Bayes' lam = T / s^2."""
    methods = ["noisy", "blur", "median 3x3", "Langevin (A.7)"] + [f"lam={lam:g}" for lam in lams]
    header = ["noise s", *methods, "best lam", "Bayes lam"]
    rows = [[std, *[row[m][0] for m in methods], f"{best_lambda(row, lams):g}",
             f"{bayes_lambda(temperature, std):.2g}"] for std, row in grid.items()]
    return header, rows


def lambda_sentence(grid: Mapping, lams: Sequence[float], temperature: float) -> str:
    """How the best lam moves with the noise, and the temperature lam s^2 it implies against the sampler's."""
    best = {s: best_lambda(row, lams) for s, row in grid.items()}
    implied = [lam * s ** 2 for s, lam in best.items() if lam > 0]
    text = "Best lam by noise level: " + ", ".join(f"s = {s:g}: {lam:g}" for s, lam in best.items()) + ". "
    if implied:
        text += (f"The temperature lam s^2 that they imply ranges over {min(implied):.2g} to {max(implied):.2g}, "
                 f"against T = {temperature:.3g} of the sampler the model was trained with")
        factor = min(implied) / temperature
        text += f" (a factor of {factor:.0f} or more)." if factor > 1 else "."
    wins = [s for s, row in grid.items() if row[f"lam={best[s]:g}"][0] > max(row["blur"][0], row["median 3x3"][0])]
    text += (f" The best lam beats both filters at {len(wins)} of {len(grid)} noise levels; plain descent (lam = 0) and "
             "the paper's Langevin restoration are within "
             f"{max(abs(row['lam=0'][0] - row['Langevin (A.7)'][0]) for row in grid.values()):.2f} dB of each other.")
    return text


def anomaly_sentence(table: Mapping[str, Mapping[str, float]]) -> str:
    """Where the energy ranks anomalies better than both PCA baselines, and where not."""
    better = [k for k, v in table.items() if v["energy"] > max(v["PCA -log p"], v["PCA reconstruction"])]
    worse = [k for k in table if k not in better]
    text = f"The energy beats both PCA baselines on {len(better)} of {len(table)} anomaly sets"
    text += f" ({', '.join(better)})" if better else ""
    return text + (f" and trails them on {', '.join(worse)}." if worse else ".")


def psnr_figure(grid: Mapping, lams: Sequence[float]):
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    stds = list(grid)
    for m in ["noisy", "blur", "median 3x3", "Langevin (A.7)"] + [f"lam={lam:g}" for lam in lams]:
        style = "--" if m in ("noisy", "blur", "median 3x3") else "-"
        ax.plot(stds, [grid[s][m][0] for s in stds], style, marker="o", ms=3, label=m)
    ax.set_xlabel("noise standard deviation s")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def examples_figure(clean: Tensor, grid: Mapping, std: float, methods: Sequence[str], n: int = 8):
    """Rows: clean, then each method's output at noise level ``std``; ``n`` digits per row."""
    rows = [("clean", clean)] + [(m, grid[std]["images"][m]) for m in methods]
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.7 * n, 0.8 * len(rows)))
    for ax, (name, x) in zip(np.atleast_1d(axes), rows):
        ax.imshow(torch.cat(list(x[:n, 0]), dim=1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------- anomaly detection
def defects(clean: Tensor, other: Tensor, generator: torch.Generator, patch: int = 6) -> dict[str, Tensor]:
    """Anomalous inputs: each clean digit with a white ``patch`` x ``patch`` square at a random place, with a
    one-pixel vertical scratch, rotated by 90 degrees, and ``other`` (another data set, as given)."""
    n, _, h, w = clean.shape
    sq = clean.clone()
    r, c = (torch.randint(0, h - patch + 1, (n,), generator=generator),
            torch.randint(0, w - patch + 1, (n,), generator=generator))
    for i in range(n):
        sq[i, :, r[i]:r[i] + patch, c[i]:c[i] + patch] = 1.0
    scratch = clean.clone()
    col = torch.randint(4, w - 4, (n,), generator=generator)
    scratch[torch.arange(n), :, 2:h - 2, col] = 1.0
    return {"white square": sq, "scratch": scratch, "rotated 90": torch.rot90(clean, 1, (2, 3)),
            "other data set": other[:n]}


def anomaly_scores(model: nn.Module, pca: PCAGaussian, x: Tensor, batch: int = 500) -> dict[str, Tensor]:
    """Three scores per input, higher = more anomalous: the energy E(x), the PCA Gaussian's -log p(x), and
    the squared error of PCA's reconstruction from its retained components."""
    with frozen(model), torch.no_grad():
        energy = torch.cat([model(xb) for xb in x.split(batch)])
    flat = x.flatten(1).double().numpy()
    recon = pca.pca.inverse_transform(pca.pca.transform(flat))
    return {"energy": energy.double(), "PCA -log p": -pca.log_prob(x),
            "PCA reconstruction": torch.from_numpy(((flat - recon) ** 2).sum(1))}


def anomaly_rows(clean_scores: Mapping[str, Tensor], sets: Mapping[str, Mapping[str, Tensor]]
                 ) -> tuple[list[str], list[list], dict]:
    """AUROC of each score for each anomaly set against the clean digits (1 = perfect, 0.5 = chance)."""
    scores = list(clean_scores)
    table = {name: {s: auroc(clean_scores[s], sc[s]) for s in scores} for name, sc in sets.items()}
    rows = [[name, *[table[name][s] for s in scores]] for name in sets]
    return ["anomaly", *scores], rows, table


def roc_figure(clean_scores: Mapping[str, Tensor], sets: Mapping[str, Mapping[str, Tensor]]):
    fig, axes = plt.subplots(1, len(sets), figsize=(2.6 * len(sets), 2.8), squeeze=False)
    for ax, (name, sc) in zip(axes[0], sets.items()):
        for s in clean_scores:
            fpr, tpr = roc_curve(clean_scores[s], sc[s])
            ax.plot(fpr, tpr, label=s)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("false-positive rate", fontsize=8)
    axes[0, 0].set_ylabel("true-positive rate", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def paper_rows(record: Mapping) -> list[dict]:
    """The results page's rows: denoising (reproduced when the best lam beats both filters and the noisy input
    at every noise level, partly when at some) and anomaly detection (reproduced when the energy's AUROC beats
    both PCA baselines on every anomaly set, partly when on some)."""
    m = record["metrics"]
    best = {s: max(v[0] for k, v in row.items() if k.startswith("lam=")) for s, row in m["psnr"].items()}
    wins = {s: best[s] > max(row["blur"][0], row["median 3x3"][0], row["noisy"][0]) for s, row in m["psnr"].items()}
    n = sum(wins.values())
    gains = ", ".join(f"s={s}: {best[s]:.1f} vs blur {row['blur'][0]:.1f} dB" for s, row in m["psnr"].items())
    denoise_row = dict(item="Denoising", verdict="reproduced" if n == len(wins) else "partly reproduced" if n else
                       "not reproduced", ours=f"best-lambda PSNR {gains}", data="MNIST test digits, Gaussian noise")
    table = m["auroc"]
    better = {k: v["energy"] > max(v["PCA -log p"], v["PCA reconstruction"]) for k, v in table.items()}
    k = sum(better.values())
    ours = "; ".join(f"{name}: {v['energy']:.3f} vs PCA {v['PCA -log p']:.3f} / {v['PCA reconstruction']:.3f}"
                     for name, v in table.items())
    anomaly_row = dict(item="Anomaly detection", ours=f"AUROC energy vs PCA -log p / reconstruction: {ours}",
                       verdict="reproduced" if k == len(better) else "partly reproduced" if k else "not reproduced",
                       data="MNIST test digits against defects and Fashion-MNIST")
    return [denoise_row, anomaly_row]
