"""Chapter 04: the paper's CIFAR-10 experiments (section 4.1, 4.2; Fig. 2, 3, 5 / Table 1, 6, 7, 17, 20, 21).

The chapter's experiments, one small function each, so the notebook only narrates and calls. Every function that
draws random numbers takes the chapter's one ``generator``.

* The models: :class:`CIFAREBMRecipe` (an :class:`~ebmlib.core.image_ebm.ImageEBMRecipe` whose model keeps the
  weights of its last training snapshots, :class:`SnapshotEnergy`, for the historical ensemble of section 4.1),
  :func:`train_models`, :func:`classifier`, :func:`gpu_hours` (the paper run's expected cost).
* Sampling: :func:`ensemble_chains` (the snapshots take turns on the chains, as in the release),
  :func:`evaluation_samples` (the release's evaluation sampler), :func:`fig3_figure`, :func:`class_rows`.
* Scores: :func:`sample_quality` (classifier-space FID and IS, Inception IS / FID where the weights are at hand),
  :func:`quality_rows`, :func:`table1_rows`.
* Section 4.2: :func:`restoration` (Fig. 6), :func:`convert` / :func:`conversion_accuracy` (Fig. 7),
  :func:`energy_sets` (Fig. 2), :func:`neighbour_rows` (Fig. 20), :func:`noise_frames_figure` (Fig. 21).
* :func:`summary_rows` and :func:`paper_rows` (the results page).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from ebmlib.core.classifiers import CIFARClassifier, ClassifierRecipe, accuracy, predict
from ebmlib.core.cost import flop_count, gpu_hours, gpu_hours_line, model_costs  # noqa: F401  (the chapter's API)
from ebmlib.core.ensemble import SnapshotEnergy, SnapshotRecipe, ensemble_chains, evaluation_samples  # noqa: F401
from ebmlib.core.image_checks import (energy_line, energy_means, energy_sets, image_energies,  # noqa: F401
                                      neighbour_rows, nn_distances)
from ebmlib.core.image_ebm import image_recipes, training_inputs
from ebmlib.core.model_quality import (QUALITY_HEADER, class_rows, ensemble_samples, inception_line,  # noqa: F401
                                      inception_networks, quality_rows, sample_quality, score_text)
from ebmlib.core.images import ImageData
from ebmlib.core.nets import CIFARResNetEnergy, count_parameters
from ebmlib.core.recipes import load_or_train, load_or_train_all
from ebmlib.core.restore import changed_fraction, half_mask, restore, salt_and_pepper, sampling_frames
from ebmlib.data import DISPLAY_NAMES, load_images
from ebmlib.notebook.launch import train_in_processes
from ebmlib.notebook import plotting as P

__all__ = [
    "IMAGE_SHAPE", "SnapshotEnergy", "CIFAREBMRecipe", "recipes", "train_models", "data_name", "data_line",
    "MODEL_HEADER", "model_rows", "model_metrics", "StandinClassifierRecipe", "classifier", "classifier_line",
    "flop_count", "gpu_hours", "gpu_hours_line", "ensemble_chains", "evaluation_samples", "generate",
    "fig3_samples", "fig3_figure", "ensemble_samples", "class_rows", "class_figure", "sample_quality",
    "QUALITY_HEADER", "quality_rows", "TABLE1_HEADER", "table1_rows", "quality_sentence", "restoration",
    "RESTORATION_HEADER", "restoration_rows", "restoration_sentence", "nn_sentence", "convert", "class_legend",
    "conversion_accuracy", "conversion_line",
    "energy_sets", "image_energies",
    "energy_means", "energy_line", "energy_histogram", "neighbour_rows", "nn_distances", "nn_line",
    "noise_frames_figure", "summary_rows", "paper_run_line", "PAPER_RECORD_NAME", "CIFAR_NOT_RUN", "paper_rows",
    "PAPER_COMMAND", "PAPER_RECORD", "paper_record",
    "PAPER_TABLE1", "load_split", "paper_cost", "paper_cost_lines", "inception_networks", "inception_line",
]

#: CIFAR-10 and the stand-in: 32 x 32 colour
IMAGE_SHAPE = (3, 32, 32)
#: the paper-scale run, as the results page and the summary give it
PAPER_COMMAND = ("python -m ebmlib data cifar10 && python -m ebmlib train 04 --scale paper --out _results && "
                 "python -m ebmlib reproduce 04 --scale paper --out _results && mkdir -p book/results/paper && "
                 "cp _results/04_cifar10.json book/results/paper/")


def _rand(n: int, generator: Optional[torch.Generator]) -> Tensor:
    return torch.rand(n, *IMAGE_SHAPE, generator=generator)


# --------------------------------------------------------------------------------------------------------
# The models: the A.6 ResNets, keeping their last weight snapshots (section 4.1's historical ensemble)

@dataclass(frozen=True)
class CIFAREBMRecipe(SnapshotRecipe):
    """An image EBM of 32x32 colour images (A.6's ResNets: conditional ResNet32, Fig. 24a; unconditional
    ResNet32Large, Fig. 24b) on CIFAR-10 or the offline stand-in, keeping the weights of ``ensemble`` snapshots
    ``ensemble_every`` iterations apart, the last at the end of training (the release: 10, 300 apart)."""

    def network(self) -> nn.Module:
        if self.dataset not in ("cifar10", "photo_crops"):
            raise ValueError(f"recipe {self.name!r}: 32x32 colour data only ('cifar10' or 'photo_crops'), "
                             f"got {self.dataset!r}")
        return CIFARResNetEnergy(width=self.width, layout="resnet32" if self.conditional else "resnet32_large",
                                 n_classes=10 if self.conditional else None)


def recipes(models: Mapping, seed: int = 0) -> dict[str, CIFAREBMRecipe]:
    """The preset's ``models`` (name -> recipe fields) as recipes; a nonzero ``seed`` goes into every
    recipe's ``train`` (a run at another seed never loads the shipped seed-0 checkpoints)."""
    return image_recipes(models, seed, CIFAREBMRecipe)


def train_models(cfg, seed: int = 0, only=None, **options) -> dict:
    """The preset's two EBMs, each loaded from its checkpoint or trained (``python -m ebmlib train 04``);
    ``options``: ``out_dir``, ``shipped_dir``, ``device``, ``progress``, ``log``, ``world``. When the preset (or
    ``$EBMLIB_NPROC``) asks for several processes they train under torchrun first, each with its own buffer."""
    train_in_processes(cfg, seed, only, **options)
    return load_or_train_all(recipes(cfg.models, seed), training_inputs(lambda name: load_images(name, "train")),
                             only=only, **options)


def data_name(dataset: str) -> str:
    """How the page names a data set: "CIFAR-10", or "photo-crops stand-in (not CIFAR-10)"."""
    return DISPLAY_NAMES.get(dataset, dataset)


def data_line(train: ImageData, test: ImageData, dataset: str) -> str:
    return (f"{data_name(dataset)}: train {tuple(train.images.shape)}, test {tuple(test.images.shape)}, "
            f"classes {', '.join(train.classes)}")


#: the header of :func:`model_rows`
MODEL_HEADER = ["model", "network", "data", "parameters", "iterations", "batch", "K", "lr", "ensemble",
                "train minutes", "loaded from"]


def model_rows(models: Mapping) -> list[list]:
    rows = []
    for key, t in models.items():
        r, c = t.recipe, t.recipe.config()
        net = "ResNet32 (Fig. 24a)" if r.conditional else "ResNet32Large (Fig. 24b)"
        rows.append([key, f"{net}, width {r.width}", data_name(r.dataset), f"{count_parameters(t.model.net):,}",
                     r.n_iters, c.batch_size, c.n_steps, c.lr, f"{r.ensemble} x {r.ensemble_every} it.",
                     f"{t.seconds / 60:.1f}", os.path.basename(t.source) if t.loaded else "trained in this run"])
    return rows


def model_metrics(models: Mapping) -> dict:
    return {k: {"recipe": t.recipe.as_dict(), "train_seconds": t.seconds, "source": os.path.basename(t.source),
                "parameters": count_parameters(t.model.net),
                "ensemble_iterations": t.model.snapshot_iterations.tolist()} for k, t in models.items()}


# --------------------------------------------------------------------------------------------------------
# The classifier that measures samples (Fig. 6, 7 and the offline scores)

@dataclass(frozen=True)
class StandinClassifierRecipe(ClassifierRecipe):
    """:class:`~ebmlib.core.classifiers.ClassifierRecipe` for 32x32 colour data (CIFAR-10 or the stand-in) with
    the width of :class:`~ebmlib.core.classifiers.CIFARClassifier` as a field (its features: 4 x width)."""

    width: int = 64

    def build(self) -> nn.Module:
        if self.dataset not in ("cifar10", "photo_crops"):
            raise ValueError(f"recipe {self.name!r}: 32x32 colour data only, got {self.dataset!r}")
        return CIFARClassifier(n_classes=10, width=self.width)


def classifier(cfg, seed: int, train: ImageData, dataset: str, out_dir=None) -> nn.Module:
    """The preset's classifier of ``dataset`` (``classifier_epochs`` on ``classifier_train`` images, all when
    None), loaded or trained through the recipe layer."""
    recipe = StandinClassifierRecipe(f"{dataset}_classifier", dataset, cfg.classifier_epochs, cfg.classifier_train,
                                     seed=seed, width=cfg.classifier_width)
    return load_or_train(recipe, data=train, out_dir=out_dir, progress=False).model


def classifier_line(cfg, train: ImageData, dataset: str, test_accuracy: float) -> str:
    return (f"classifier (CIFARClassifier, width {cfg.classifier_width}, {4 * cfg.classifier_width} features): "
            f"{cfg.classifier_epochs} epoch(s) on {len(train) if cfg.classifier_train is None else cfg.classifier_train}"
            f" {data_name(dataset)} images; test accuracy {test_accuracy:.4f}")


# --------------------------------------------------------------------------------------------------------
# What the paper-scale run costs

# --------------------------------------------------------------------------------------------------------
# Sampling: the last weights, the historical ensemble, the release's evaluation sampler

def generate(model: nn.Module, n: int, n_steps: int, y: Optional[Tensor] = None, x0: Optional[Tensor] = None,
             generator: Optional[torch.Generator] = None, sampler=None) -> Tensor:
    """``n`` chains of ``n_steps`` of A.7's Langevin (or ``sampler``) from uniform noise (or ``x0``)."""
    x0 = _rand(n, generator) if x0 is None else x0
    return restore(model, x0, n_steps, y=y, sampler=sampler, generator=generator)


def fig3_samples(quality_samples: Mapping[str, tuple], model: str, n: int) -> dict[str, Tensor]:
    """Fig. 3's panels: the first ``n`` images of each scored sample set of ``model`` (the keys of
    :func:`sample_quality`'s second result, "<model>: <protocol>" -> (images, labels)), by protocol."""
    panels = {k.split(": ", 1)[1]: x[:n] for k, (x, _) in quality_samples.items() if k.split(": ", 1)[0] == model}
    if not panels:
        raise KeyError(f"no scored samples of model {model!r}; there are {sorted(quality_samples)}")
    return panels


def fig3_figure(panels: Mapping[str, Tensor], nrow: int = 6, title: str = ""):
    """Fig. 3: the panels side by side (replay buffer, fresh chains of the last weights, the ensemble)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6), squeeze=False)
    for ax, (name, x) in zip(axes[0], panels.items()):
        P.show_images(x, nrow=nrow, ax=ax, title=name)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def class_figure(rows: Mapping[str, Tensor], title: str):
    fig = P.image_rows(rows)
    fig.suptitle(title, fontsize=9, y=1.02)
    return fig


# --------------------------------------------------------------------------------------------------------
# Table 1: sample quality

#: the paper's Table 1 (Fig. 5) rows for CIFAR-10: (row, IS, FID)
PAPER_TABLE1 = {"uncond_single": ("unconditional EBM (single)", 6.02, 40.58),
                "uncond_ensemble": ("unconditional EBM (10 historical ensemble)", 6.78, 38.2),
                "cond_single": ("conditional EBM (single)", 8.30, 37.9)}

#: the header of :func:`table1_rows`
TABLE1_HEADER = ["row of Table 1", "our samples", "IS", "FID", "measured by", "paper IS", "paper FID (CIFAR-10)"]


def _table1_keys(quality: Mapping) -> dict[str, str]:
    """Which of our protocols stands for each CIFAR-10 row of Table 1."""
    def find(model_kind: str, how: str) -> Optional[str]:
        return next((k for k in quality if k.split(": ")[0].endswith(model_kind) and how in k), None)
    return {"uncond_single": find("uncond", "last weights"), "uncond_ensemble": find("uncond", "ensemble"),
            "cond_single": find("_cond", "last weights")}


def table1_rows(quality: Mapping[str, dict], dataset: str) -> list[list]:
    """Table 1's CIFAR-10 rows: our IS and FID (Inception where it ran, else the classifier's, labelled) beside
    the paper's. On the stand-in the numbers are not comparable with the paper's and the rows say so."""
    rows = []
    for kind, key in _table1_keys(quality).items():
        label, p_is, p_fid = PAPER_TABLE1[kind]
        if key is None:
            continue
        v = quality[key]
        if "inception_is" in v:
            ours, by = (f"{v['inception_is']:.2f}", f"{v['inception_fid']:.2f}"), f"Inception, {data_name(dataset)}"
        else:
            ours, by = (f"{v['is']:.2f}", f"{v['fid']:.2f}"), f"a classifier of the {data_name(dataset)}"
        rows.append([label, key.split(": ", 1)[1], *ours, by, f"{p_is:.2f}", f"{p_fid:.2f}"])
    return rows


def quality_sentence(quality: Mapping[str, dict]) -> str:
    """The verdicts of section 4.1 on this run: does the ensemble beat the single model, the buffer the chains?"""
    keys = _table1_keys(quality)
    u_single, u_ens = quality[keys["uncond_single"]], quality[keys["uncond_ensemble"]]
    buffer = quality[next(k for k in quality if k.split(": ")[0].endswith("uncond") and "buffer" in k)]
    ens = "lower (better)" if u_ens["fid"] < u_single["fid"] else "not lower"
    buf = "lower (better)" if buffer["fid"] < min(u_single["fid"], u_ens["fid"]) else "not lower"
    return (f"Unconditional model, classifier-space FID: replay buffer {buffer['fid']:.2f}, fresh chains of the last "
            f"weights {u_single['fid']:.2f}, {keys['uncond_ensemble'].split(', ')[-1]} {u_ens['fid']:.2f}. The "
            f"ensemble's FID is "
            f"**{ens}** than the single model's (the paper, Inception FID on CIFAR-10: 38.2 vs 40.58), and the buffer's is **{buf}** than "
            f"either sampler's (the paper, qualitatively: the buffer holds more modes, Fig. 3d vs 3c).")


# --------------------------------------------------------------------------------------------------------
# Section 4.2: restoration (Fig. 6) and cross-class conversion (Fig. 7)

def restoration(model: nn.Module, clf: nn.Module, x: Tensor, labels: Tensor, n_steps: int,
                generator: Optional[torch.Generator] = None, fraction: float = 0.1) -> tuple[dict, dict]:
    """Fig. 6 on test images ``x``: salt and pepper on ``fraction`` of the pixel values, the bottom half replaced
    by uniform noise (only that half is sampled, the top clamped), and the clean image (ground-truth start),
    each followed by ``n_steps`` Langevin steps of A.7's sampler. The classifier says how often the restored
    image's class differs from the clean image's (the paper: ~10% from the ground truth, ~30% otherwise).
    Returns (metrics per start, {name: (corrupted, restored)})."""
    clean_pred = predict(clf, x)
    mask = half_mask(tuple(x.shape), keep="top")
    starts = {f"salt and pepper ({fraction:g})": (salt_and_pepper(x, fraction, generator), None),
              "bottom half masked": (torch.where(mask, x, torch.rand(x.shape, generator=generator)), mask),
              "ground-truth init": (x, None)}
    metrics, images = {}, {}
    for name, (xc, m) in starts.items():
        xr = restore(model, xc, n_steps, mask=m, generator=generator)
        metrics[name] = {"changed_class_before": changed_fraction(clean_pred, predict(clf, xc)),
                         "changed_class_after": changed_fraction(clean_pred, predict(clf, xr)),
                         "accuracy_after": accuracy(clf, xr, labels),
                         "mse_after": (xr - x).pow(2).mean().item(), "mse_before": (xc - x).pow(2).mean().item()}
        images[name] = (xc, xr)
    return metrics, images


#: the header of :func:`restoration_rows`
RESTORATION_HEADER = ["start", "class changed before", "class changed after", "accuracy after", "MSE before",
                      "MSE after", "paper (class changed)"]


def restoration_rows(metrics: Mapping[str, dict]) -> list[list]:
    paper = {"ground-truth init": "~10%"}
    return [[name, f"{r['changed_class_before']:.3f}", f"{r['changed_class_after']:.3f}", f"{r['accuracy_after']:.3f}",
             f"{r['mse_before']:.4f}", f"{r['mse_after']:.4f}", paper.get(name, "~30%")] for name, r in metrics.items()]


def class_legend(classes: Sequence[str]) -> str:
    """"0 astronaut, 1 chelsea, ...": the class numbers that label the columns of Fig. 7."""
    return "classes: " + ", ".join(f"{i} {name}" for i, name in enumerate(classes))


def restoration_sentence(metrics: Mapping[str, dict]) -> str:
    """Fig. 6 on this run against the paper's CIFAR-10 figures (~10% of classes changed from the ground truth,
    ~30% under salt and pepper or inpainting), saying where ours is above them."""
    gt = metrics["ground-truth init"]["changed_class_after"]
    parts = [f"ground-truth start {gt:.1%} (the paper ~10%: "
             f"{'reached' if gt <= 0.10 + 1e-6 else 'not reached, more images change class'})"]
    for name in (k for k in metrics if k != "ground-truth init"):
        r = metrics[name]
        after = r["changed_class_after"]
        parts.append(f"{name} {after:.1%}, before restoration {r['changed_class_before']:.1%} (the paper ~30%: "
                     f"{'at or below it' if after <= 0.30 + 1e-6 else 'not reached, more images change class'})")
    return "Images whose class changed after restoration: " + "; ".join(parts) + "."


def nn_sentence(d: Mapping) -> str:
    """Fig. 20's verdict on this run: are samples at least as far from the training set as held-out images?"""
    if d["samples_median"] >= d["test_median"]:
        return (f"Samples lie at least as far from their nearest training image ({d['samples_median']:.2f}) as "
                f"held-out test images do ({d['test_median']:.2f}): no sign of copies, as in the paper's Fig. 20.")
    return (f"Samples lie **closer** to their nearest training image ({d['samples_median']:.2f}) than held-out test "
            f"images do ({d['test_median']:.2f}): the paper's point (Fig. 20, samples are not copies) is **not "
            f"shown** by this number. On the stand-in the test crops come from parts of the photographs that no "
            f"training crop touches, so they lie farther from the training set than new crops of the same regions "
            f"would; the figure above shows whether the samples copy their neighbours.")


def convert(model: nn.Module, x_test: Tensor, labels: Tensor, n_sources: int, n_steps: int,
            generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """Fig. 7: the first test image of each of the first ``n_sources`` classes, sampled ``n_steps`` under each of
    the 10 labels: {"class c": (11, 3, 32, 32): the start, then the conversions to classes 0..9}."""
    src = [int(torch.nonzero(labels == c)[0, 0]) for c in range(10) if (labels == c).any()][:n_sources]
    targets = torch.arange(10)
    return {f"class {int(labels[i])}": torch.cat(
                [x_test[i][None], restore(model, x_test[i].expand(10, -1, -1, -1), n_steps, y=targets,
                                          generator=generator)]) for i in src}


def conversion_accuracy(clf: nn.Module, converted: Mapping[str, Tensor]) -> tuple[float, int]:
    """How often ``clf`` calls a conversion its target class, over conversions to another class than the
    source's; returns (accuracy, number of such conversions)."""
    conv = torch.cat([v[1:] for v in converted.values()])
    targets = torch.arange(10).repeat(len(converted))
    sources = torch.tensor([int(k.split()[-1]) for k in converted]).repeat_interleave(10)
    off = targets != sources
    return accuracy(clf, conv[off], targets[off]), int(off.sum())


def conversion_line(conversion: float, n: int, n_steps: int) -> str:
    return (f"conversions classified as their target class: {conversion:.3f} ({n} conversions to another class, "
            f"{n_steps} Langevin steps each)")


# --------------------------------------------------------------------------------------------------------
# Fig. 2, Fig. 20, Fig. 21

def energy_histogram(energies: Mapping[str, Tensor], skip: Sequence[str] = ("uniform noise",)):
    """Fig. 2: normalised histograms of the energies of each set but ``skip`` (1% tails clipped)."""
    shown = {k: e for k, e in energies.items() if k not in skip}
    lo = min(e.quantile(0.01).item() for e in shown.values())
    hi = max(e.quantile(0.99).item() for e in shown.values())
    fig, ax = plt.subplots(figsize=(6, 3))
    for name, e in shown.items():
        ax.hist(e.clamp(lo, hi).numpy(), bins=np.linspace(lo, hi, 50), histtype="step", lw=1.5, density=True,
                label=name)
    ax.set_xlabel("energy E(x)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return fig


def nn_line(d: Mapping, pool_size: int) -> str:
    return (f"median L2 distance to the nearest of {pool_size} training images: samples {d['samples_median']:.2f}, "
            f"held-out test images {d['test_median']:.2f}")


def noise_frames_figure(t, x0: Tensor, frames: Sequence[int], classes: Sequence[str],
                        generator: Optional[torch.Generator] = None):
    """Fig. 21: chains from noise ``x0`` after each number of Langevin steps in ``frames``, one row per chain
    (a conditional model conditions chain i on class i mod 10)."""
    y = torch.arange(x0.shape[0]) % 10 if t.recipe.conditional else None
    traj = sampling_frames(t.model, x0, tuple(frames), y=y, generator=generator)
    names = [f"chain {i}" + (f" ({classes[int(y[i])]})" if y is not None else "") for i in range(x0.shape[0])]
    fig = P.image_rows({names[i]: traj[:, i] for i in range(x0.shape[0])}, col_labels=[str(f) for f in frames])
    fig.suptitle(f"{t.recipe.name}; columns: Langevin steps", fontsize=9, y=1.04)
    return fig


# --------------------------------------------------------------------------------------------------------
# Summary and the results page

#: where a paper-scale CIFAR-10 run's metrics are committed (``reproduce 04 --scale paper`` writes them to --out)
PAPER_RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "book", "results", "paper",
                            "04_cifar10.json")


#: the committed record's path inside the repository
PAPER_RECORD_NAME = "book/results/paper/04_cifar10.json"


def paper_record(path: Optional[str] = None) -> Optional[dict]:
    """The committed metrics of a paper-scale CIFAR-10 run of this chapter (``book/results/paper/04_cifar10.json``),
    or None when there is none (then the CIFAR-10 rows say "not run here" and give :data:`PAPER_COMMAND`)."""
    import json
    path = path or PAPER_RECORD
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if record.get("metrics", {}).get("dataset") == "cifar10" else None


def _headline(m: Mapping) -> dict:
    """The summary's numbers of one run's metrics."""
    q, keys = m["quality"], _table1_keys(m["quality"])
    buffer = next(k for k in q if k.split(": ")[0].endswith("uncond") and "buffer" in k)
    rs = m["restoration"]
    out = {"buffer": q[buffer], **{kind: q[k] for kind, k in keys.items() if k is not None},
           "conversion": m["conversion_accuracy"], "classifier": m["classifier_test_accuracy"],
           "gt": rs["ground-truth init"]["changed_class_after"],
           "sp": rs["salt and pepper (0.1)"]["changed_class_after"],
           "inp": rs["bottom half masked"]["changed_class_after"]}
    return out


def summary_rows(metrics: Mapping, cifar: Optional[Mapping] = None) -> list[list]:
    """The summary: this run's numbers (classifier space on the stand-in; Inception on CIFAR-10 where it ran),
    the paper's, and a committed CIFAR-10 run's (``cifar``: its record, or None: "not run here" + command)."""
    h = _headline(metrics)
    c = _headline(cifar["metrics"]) if cifar is not None else None
    on_cifar = metrics.get("dataset") == "cifar10"
    missing = "not run here (the command is below the table)"

    def col(fn):
        return fn(c) if c is not None else missing
    rows = [
        ["classifier test accuracy (the measuring stick)", f"{h['classifier']:.4f}", "-",
         col(lambda r: f"{r['classifier']:.4f}")],
        ["uncond., replay buffer: IS / FID (classifier space)", score_text(h["buffer"], False), "qualitative (Fig. 3d)",
         col(lambda r: score_text(r["buffer"], False))],
    ]
    for kind, (label, p_is, p_fid) in PAPER_TABLE1.items():
        if kind in h:
            rows.append([f"{label}: IS / FID (classifier space)", score_text(h[kind], False), "not comparable",
                         col(lambda r, k=kind: score_text(r[k], False))])
            rows.append([f"{label}: Inception IS / FID", score_text(h[kind], True) if on_cifar else "not run (stand-in)",
                         f"IS {p_is:.2f} / FID {p_fid:.2f}", col(lambda r, k=kind: score_text(r[k], True))])
    if "cond_single" in h:
        rows.append(["conditional samples classified as their class", f"{h['cond_single']['conditional_accuracy']:.3f}",
                     "-", col(lambda r: f"{r['cond_single']['conditional_accuracy']:.3f}")])
    rows += [
        ["cross-class conversions reaching the target class", f"{h['conversion']:.3f}", "qualitative (Fig. 7)",
         col(lambda r: f"{r['conversion']:.3f}")],
        ["class changed: ground-truth start", f"{h['gt']:.3f}", "~0.10", col(lambda r: f"{r['gt']:.3f}")],
        ["class changed: salt and pepper 0.1", f"{h['sp']:.3f}", "~0.30", col(lambda r: f"{r['sp']:.3f}")],
        ["class changed: bottom half inpainted", f"{h['inp']:.3f}", "~0.30", col(lambda r: f"{r['inp']:.3f}")],
    ]
    return rows


def paper_run_line(cifar: Optional[Mapping]) -> str:
    """Under the summary: which paper-scale CIFAR-10 run the last column shows, or the command that makes one."""
    if cifar is None:
        return (f"No paper-scale CIFAR-10 run is committed (CIFAR-10 cannot be downloaded on the book's machines). "
                f"On a machine with a GPU and the network: `{PAPER_COMMAND}`")
    return f"The last column: the paper-scale CIFAR-10 run of {cifar['written'][:10]} (`{PAPER_RECORD_NAME}`)."


def _verdict_table1(m: Mapping) -> str:
    """Reproduced when every CIFAR-10 row's Inception IS and FID lie within 10% of the paper's; partly when
    some do; not reproduced when none does."""
    keys = _table1_keys(m["quality"])
    hits = []
    for kind, key in keys.items():
        v = m["quality"].get(key) if key else None
        if v is None or "inception_is" not in v:
            return "not run here"
        _, p_is, p_fid = PAPER_TABLE1[kind]
        hits.append(abs(v["inception_is"] - p_is) <= 0.1 * p_is and abs(v["inception_fid"] - p_fid) <= 0.1 * p_fid)
    return "reproduced" if all(hits) else "partly reproduced" if any(hits) else "not reproduced"


def _run_rows(record: Mapping) -> list[dict]:
    """The results page's rows for one record (the stand-in demo or a CIFAR-10 run)."""
    m, pre = record["metrics"], record["metrics"]["preset"]
    on_cifar = m.get("dataset") == "cifar10"
    kinds = {spec["conditional"]: spec for spec in pre["models"].values()}   # the JSON sorts the names
    r0 = kinds[False]
    data = (f"{data_name(m['dataset'])}, ResNet32Large width {kinds[False]['width']} / ResNet32 width "
            f"{kinds[True]['width']}, {r0['n_iters']} / {kinds[True]['n_iters']} iterations")
    plain = "" if on_cifar else "the stand-in, not CIFAR-10"
    note = "" if on_cifar else "the stand-in, not CIFAR-10; scores in a classifier's feature space"
    h = _headline(m)
    rows = []
    e = m["energy_means"]
    train, noise = e["train"], e["uniform noise"]
    close = all(abs(e[k] - train) <= 0.05 * abs(noise - train) for k in ("test", "samples (buffer)"))
    rows.append(dict(item="Fig. 2", ours=f"mean energy: train {train:.4f}, test {e['test']:.4f}, samples "
                     f"{e['samples (buffer)']:.4f}, uniform noise {noise:.4f}",
                     verdict="reproduced" if close else "not reproduced", note=plain or "means, not histograms",
                     data=data))
    ens = f"{r0['ensemble']}-snapshot ensemble"
    rows.append(dict(item="Fig. 3", ours=(f"replay buffer, fresh chains and the {ens}; classifier-space "
                                          f"FID {h['buffer']['fid']:.2f} / {h['uncond_single']['fid']:.2f} / "
                                          f"{h['uncond_ensemble']['fid']:.2f}"),
                     verdict="shown (qualitative)", note=note, data=data))
    if on_cifar:
        ours = "; ".join(f"{PAPER_TABLE1[k][0]} {score_text(h[k], True)}" for k in PAPER_TABLE1 if k in h)
        rows.append(dict(item="Fig. 5 / Table 1", ours=ours, verdict=_verdict_table1(m),
                         note=f"{m['quality'][_table1_keys(m['quality'])['uncond_single']]['n']} samples", data=data))
    else:
        ours = "; ".join(f"{PAPER_TABLE1[k][0]} {score_text(h[k], False)}" for k in PAPER_TABLE1 if k in h)
        rows.append(dict(item="Fig. 5 / Table 1", ours=ours, verdict="not run here",
                         note="the stand-in's classifier-space IS / FID, not comparable with the paper's", data=data))
    sp, ip, gt = (m["restoration"][k] for k in ("salt and pepper (0.1)", "bottom half masked", "ground-truth init"))
    repaired = all(r["changed_class_after"] < r["changed_class_before"] for r in (sp, ip))
    gt_ok = gt["changed_class_after"] <= 0.10 + 1e-6          # the JSON holds float32 fractions (0.1 = 0.10000000149)
    rows.append(dict(item="Fig. 6", ours=(f"class changed after restoration: ground truth {gt['changed_class_after']:.1%}, "
                                          f"salt and pepper {sp['changed_class_after']:.1%} (before "
                                          f"{sp['changed_class_before']:.1%}), inpainting {ip['changed_class_after']:.1%} "
                                          f"(before {ip['changed_class_before']:.1%})"),
                     verdict="reproduced" if repaired and gt_ok else "not reproduced",
                     note=note, data=data))
    rows.append(dict(item="Fig. 7 / 19", ours=f"{m['conversion_accuracy']:.1%} of conversions classified as the "
                     "target class", verdict="shown (qualitative)", note=note, data=data))
    if "cond_single" in h:
        rows.append(dict(item="Fig. 17", ours=(f"class-conditional samples of the {ens}, one row per "
                                               f"class; {h['cond_single']['conditional_accuracy']:.1%} of the last "
                                               "weights' samples classified as their class"),
                         verdict="shown (qualitative)", note=note, data=data))
    nn_d = m["nn_distance"]
    rows.append(dict(item="Fig. 20", ours=(f"median L2 distance to the nearest training image: samples "
                                           f"{nn_d['samples_median']:.2f}, test images {nn_d['test_median']:.2f}"),
                     verdict="reproduced" if nn_d["samples_median"] >= nn_d["test_median"] else "not reproduced",
                     note=plain and (plain + "; its test crops come from parts of the photographs no training crop "
                                     "touches, so they lie farther from the training set than new crops would"),
                     data=data))
    rows.append(dict(item="Fig. 21", ours=f"chains from noise over {pre['noise_frames'][-1]} Langevin steps",
                     verdict="shown (qualitative)", note=plain, data=data))
    return rows


#: the "data" of the results page's CIFAR-10 rows while no paper-scale run is committed
CIFAR_NOT_RUN = "CIFAR-10 at paper scale: no run committed"


def paper_rows(record: Mapping, cifar: Optional[Mapping] = "committed") -> list[dict]:
    """The results page's rows for this chapter, from its metrics JSON ``record``.

    A CIFAR-10 record (a paper-scale run) gives its own rows. The stand-in demo record gives its rows, labelled
    as the stand-in, and the CIFAR-10 rows of Fig. 3, Fig. 5 / Table 1 and Fig. 17: from the committed
    paper-scale record (``cifar``; by default :func:`paper_record`) when there is one, else "not run here" with
    the command. Verdicts: Fig. 2 reproduced when the buffer samples' and the test images' mean energies lie
    within 5% of the train-to-noise distance of the training images'; Fig. 5 / Table 1 reproduced when every
    Inception IS and FID lies within 10% of the paper's (partly: some); Fig. 6 as in chapter 03 (restoration
    lowers the changed fraction of both corruptions, the ground-truth start changes at most 10%); Fig. 20 when
    samples lie at least as far from their nearest training image as test images do."""
    rows = _run_rows(record)
    if record["metrics"].get("dataset") == "cifar10":
        return rows
    cifar = paper_record() if cifar == "committed" else cifar
    if cifar is not None:
        return rows + [dict(r, data=r["data"] + f" (paper-scale run of {cifar['written'][:10]})")
                       for r in _run_rows(cifar) if r["item"] in ("Fig. 3", "Fig. 5 / Table 1", "Fig. 17")]
    why = f"CIFAR-10 cannot be downloaded on the book's machines; run `{PAPER_COMMAND}`"
    for item in ("Fig. 3", "Fig. 5 / Table 1", "Fig. 17"):
        rows.append(dict(item=item, ours="-", verdict="not run here", note=why, data=CIFAR_NOT_RUN))
    return rows


# --------------------------------------------------------------------------------------------------------
# Setup helpers of the page

def load_split(cfg, split: str) -> ImageData:
    """Split ``split`` of the preset's data set: CIFAR-10 (torchvision's files under the data root, downloaded
    where the network allows) or the photo-crops stand-in (made from bundled photographs)."""
    return load_images(cfg.dataset, split)


def paper_cost(cfg) -> dict:
    """The expected GPU-hours of each paper-scale model (:func:`gpu_hours`): from the benchmark's measured
    rate ``cfg.measured_rate`` (training iterations per second, per model name, or one number for both) when
    there is one, else the FLOP estimate at ``cfg.flops_per_s`` x ``cfg.utilisation``. Returns
    {name: (recipe, estimate)}."""
    from ebmlib.presets import preset

    paper = preset("04_cifar10", "paper")
    return model_costs(recipes(paper.models), cfg.measured_rate, cfg.flops_per_s, cfg.utilisation)


def paper_cost_lines(cost: Mapping) -> str:
    lines = [gpu_hours_line(name, r, est) for name, (r, est) in cost.items()]
    total = sum(est["hours"] for _, est in cost.values())
    return ("\n".join(f"* {line}" for line in lines) + f"\n* both models: **{total:.1f} GPU-hours**; the paper "
            "reports 2 days on 1 GPU for CIFAR-10 (A.7)")
