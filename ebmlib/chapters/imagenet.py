"""Chapter 12: the paper's ImageNet experiments (section 4.1; Fig. 4, 8, 18; Table 1's ImageNet rows).

Class-conditional EBMs of 32x32 and 128x128 images with the release's ImageNet networks, trained by the paper on
32 GPUs for 5 and 7 days. One small function each, so the notebook only narrates and calls; every function that
draws random numbers takes the chapter's one ``generator``. The CIFAR-10 chapter's machinery is shared through
``ebmlib.core``: the snapshot ensemble and the release's evaluation sampler (:mod:`ebmlib.core.ensemble`), Table 1's
protocol (:mod:`ebmlib.core.model_quality`) and the cost of a paper run (:mod:`ebmlib.core.cost`).

* The models: :class:`ImageNetEBMRecipe`, :func:`recipes`, :func:`train_models`, :func:`model_rows`.
* The data: :func:`load_split` (the stand-in, or ImageNet32 / ImageNet128 from disk), :func:`training_data`.
* What scale changes: :func:`scale_rows` (parameters, FLOPs and gradient bytes all-reduced per iteration of
  the paper's three image recipes), :func:`paper_cost` / :func:`paper_cost_lines`.
* Samples: :func:`class_samples` (Fig. 4 / 18), :func:`completions` (Fig. 8), :func:`completion_diversity`.
* Scores: :func:`table1_rows` and the results page (:func:`paper_rows`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ebmlib.core.classifiers import ClassifierRecipe, accuracy
from ebmlib.core.cost import gpu_hours_line, model_costs, network_flops
from ebmlib.core.ensemble import SnapshotRecipe
from ebmlib.core.image_ebm import image_recipes, training_inputs
from ebmlib.core.images import DEQUANTIZERS, ImageData
from ebmlib.core.model_quality import (Resized, class_rows, ensemble_samples, quality_rows, sample_quality,
                                      score_text)
from ebmlib.core.nets import CIFARResNetEnergy, count_parameters, imagenet128_energy, imagenet32_energy
from ebmlib.core.recipes import load_or_train, load_or_train_all
from ebmlib.core.restore import completions
from ebmlib.data import DISPLAY_NAMES, load_images
from ebmlib.notebook import plotting as P
from ebmlib.notebook.launch import train_in_processes

__all__ = ["ImageNetEBMRecipe", "recipes", "training_data", "train_models", "data_name", "load_split", "data_line",
           "MODEL_HEADER", "model_rows", "model_metrics", "classifier", "scorer", "classifier_line", "PAPER_RECIPES",
           "SCALE_HEADER", "scale_rows", "paper_cost", "paper_cost_lines", "score_models", "quality_table",
           "sample_rows", "class_figure", "PAPER_TABLE1", "TABLE1_HEADER", "table1_rows", "completion_inputs",
           "dequantize_like", "completion_rows", "completion_stats", "completion_line", "PAPER_COMMAND",
           "PAPER_RECORD_NAME", "PAPER_RECORD", "paper_record", "summary_rows", "paper_run_line", "IMAGENET_NOT_RUN",
           "paper_rows", "class_rows"]

#: how this chapter names its data sets: the stand-in is named for what it is, never ImageNet
_NAMES = {"photo_crops": "photo-crops stand-in at 32x32 (not ImageNet32)",
          "photo_crops_128": DISPLAY_NAMES["photo_crops_128"],
          "imagenet32": "ImageNet 32x32", "imagenet128": "ImageNet 128x128"}


def data_name(dataset: str) -> str:
    """How the page names a data set: "ImageNet 32x32", or "photo-crops stand-in at 32x32 (not ImageNet32)"."""
    return _NAMES.get(dataset, DISPLAY_NAMES.get(dataset, dataset))


# --------------------------------------------------------------------------------------------------------
# The models: the release's ImageNet ResNets with the historical ensemble's snapshots

@dataclass(frozen=True)
class ImageNetEBMRecipe(SnapshotRecipe):
    """A class-conditional EBM of ``image_size`` x ``image_size`` colour images with ``n_classes`` labels:
    ResNet32Wider (32x32, Fig. 24c) or ResNet128 (128x128, Fig. 24d) at ``width`` with activation ``act``,
    dequantised as ``dequant`` ("centred": the release's ImageNet32 loader; "bin": A.3), keeping the weights of
    ``ensemble`` snapshots for section 4.1's historical ensemble."""

    image_size: int = 32
    n_classes: int = 1000
    act: str = "leaky_relu"
    dequant: str = "centred"

    def network(self) -> nn.Module:
        if self.image_size not in (32, 128):
            raise ValueError(f"recipe {self.name!r}: image_size must be 32 (ResNet32Wider) or 128 (ResNet128), "
                             f"got {self.image_size!r}")
        if self.dequant not in DEQUANTIZERS:
            raise ValueError(f"recipe {self.name!r}: dequant must be one of {sorted(DEQUANTIZERS)}, got {self.dequant!r}")
        labels = self.n_classes if self.conditional else None
        if self.image_size == 32:
            return imagenet32_energy(labels, self.width, self.act)
        return imagenet128_energy(labels, self.width, self.act)

    def dequantizer(self) -> Callable:
        return DEQUANTIZERS[self.dequant]


def recipes(models: Mapping, seed: int = 0) -> dict[str, ImageNetEBMRecipe]:
    """The preset's ``models`` (name -> recipe fields) as recipes; a nonzero ``seed`` goes into every recipe's
    ``train`` (a run at another seed never loads the shipped seed-0 checkpoints)."""
    return image_recipes(models, seed, ImageNetEBMRecipe)


def training_data(dataset: str):
    """What a recipe of ``dataset`` trains on: the stand-in's training split as :class:`ImageData`; ImageNet32's
    1.28 M training images memory-mapped from one array file (written once from the batch files); ImageNet128 as
    a source that decodes each minibatch's photos as it is drawn."""
    from ebmlib.data import imagenet

    if dataset == "imagenet32":
        return imagenet.imagenet32_memmap("train")
    if dataset == "imagenet128":
        return imagenet.imagenet128_source("train")
    return _standin(dataset, "train")


def train_models(cfg, seed: int = 0, only=None, **options) -> dict:
    """The preset's EBMs, each loaded from its checkpoint or trained (``python -m ebmlib train 12``); ``options``:
    ``out_dir``, ``shipped_dir``, ``device``, ``progress``, ``log``, ``world``. When the preset (or
    ``$EBMLIB_NPROC``) asks for several processes they train under torchrun first, each with its own buffer."""
    train_in_processes(cfg, seed, only, **options)
    return load_or_train_all(recipes(cfg.models, seed), training_inputs(training_data), only=only, **options)


def _split_name(dataset: str, split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return "val" if dataset.startswith("imagenet") and split == "test" else split


def load_split(dataset: str, split: str, n: Optional[int] = None, seed: int = 0) -> ImageData:
    """Split ``split`` ("train" or "test") of ``dataset``: the stand-in (made from bundled photographs); ImageNet32
    (the training set memory-mapped, :func:`training_data`; "test" is the 50,000 validation images); or ``n``
    ImageNet128 photos drawn with ``seed`` (ImageNet128 does not fit in memory; "test" reads the validation set)."""
    from ebmlib.data import imagenet

    name = _split_name(dataset, split)
    if dataset == "imagenet32":
        return imagenet.imagenet32_memmap("train") if name == "train" else imagenet.load_imagenet32("val")
    if dataset == "imagenet128":
        return imagenet.imagenet128_images(name, n, seed)
    return _standin(dataset, name)


@lru_cache(maxsize=4)
def _standin(dataset: str, split: str) -> ImageData:
    """The stand-in's split, made once per process (cropping 20,000 photos takes seconds; the page reads each
    split several times). Callers do not modify it."""
    return load_images(dataset, split)


def data_line(data: ImageData, split: str, dataset: str) -> str:
    return (f"{data_name(dataset)}, {split}: {len(data):,} images of {tuple(data.images.shape[1:])} in "
            f"{len(data.classes)} classes")


#: the header of :func:`model_rows`
MODEL_HEADER = ["model", "network", "data", "classes", "parameters", "iterations", "batch", "K", "step", "lr",
                "ensemble", "train minutes", "loaded from"]


def _network_name(recipe: ImageNetEBMRecipe) -> str:
    return ("ResNet32Wider (Fig. 24c)" if recipe.image_size == 32 else "ResNet128 (Fig. 24d)") + f", {recipe.act}"


def model_rows(models: Mapping) -> list[list]:
    rows = []
    for key, t in models.items():
        r, c = t.recipe, t.recipe.config()
        rows.append([key, f"{_network_name(r)}, width {r.width}", data_name(r.dataset), r.n_classes,
                     f"{count_parameters(t.model.net):,}", r.n_iters, c.batch_size, c.n_steps, c.step_size, c.lr,
                     f"{r.ensemble} x {r.ensemble_every} it.", f"{t.seconds / 60:.1f}",
                     os.path.basename(t.source) if t.loaded else "trained in this run"])
    return rows


def model_metrics(models: Mapping) -> dict:
    return {k: {"recipe": t.recipe.as_dict(), "train_seconds": t.seconds, "source": os.path.basename(t.source),
                "parameters": count_parameters(t.model.net),
                "ensemble_iterations": t.model.snapshot_iterations.tolist()} for k, t in models.items()}


# --------------------------------------------------------------------------------------------------------
# What scale changes: capacity, compute and communication of the paper's image recipes

def classifier(cfg, seed: int, out_dir=None) -> nn.Module:
    """The preset's classifier of ``cfg.classifier_data`` (32x32 images: the stand-in or ImageNet32), loaded or
    trained through the recipe layer; it scores 128x128 samples through
    :class:`~ebmlib.core.model_quality.Resized` (area-averaged to 32x32, as ImageNet32 was made from ImageNet)."""
    data = cfg.classifier_data
    recipe = ClassifierRecipe(f"imagenet_chapter_{data}_classifier", data, cfg.classifier_epochs,
                              cfg.classifier_train, seed=seed, width=cfg.classifier_width)
    return load_or_train(recipe, data=load_split(data, "train"), out_dir=out_dir, progress=False).model


def scorer(clf: nn.Module, recipe: ImageNetEBMRecipe) -> nn.Module:
    """What scores ``recipe``'s samples: the 32x32 classifier itself, or it behind an area-average to 32x32."""
    return clf if recipe.image_size == 32 else Resized(clf, 32)


def classifier_line(cfg, test_accuracy: float) -> str:
    return (f"classifier (CIFARClassifier, width {cfg.classifier_width}): {cfg.classifier_epochs} epoch(s) on the "
            f"{data_name(cfg.classifier_data)} training images; test accuracy {test_accuracy:.4f}; it scores 128x128 "
            "samples area-averaged to 32x32")


#: the paper's image recipes (A.6, A.7 and the release): network, classes, batch per GPU, K, GPUs, days
PAPER_RECIPES = {
    "CIFAR-10 (ResNet32, cond.)": dict(net=lambda: CIFARResNetEnergy(128, "resnet32", n_classes=10), batch=128,
                                       K=60, gpus=1, days=2),
    "ImageNet32 (ResNet32Wider)": dict(net=lambda: imagenet32_energy(1000, 128), batch=32, K=60, gpus=32, days=5),
    "ImageNet128 (ResNet128)": dict(net=lambda: imagenet128_energy(1000, 64), batch=16, K=50, gpus=32, days=7),
}

#: the header of :func:`scale_rows`
SCALE_HEADER = ["recipe", "parameters", "GFLOP per Langevin step (one image)", "batch per GPU x K",
                "TFLOP per GPU per iteration", "GPUs", "MB all-reduced per iteration", "FLOP per byte all-reduced",
                "paper: days"]


def scale_rows() -> list[list]:
    """What the paper's scale changes, counted (``torch.utils.flop_counter``; no GPU is needed): per recipe the
    parameter count, the FLOPs of one Langevin step, one GPU's FLOPs per training iteration (batch x (K steps +
    2 training passes)), and the float32 gradient all-reduced per iteration: its size, and how much compute each
    byte of it pays for (large: data parallelism scales; the all-reduce is one gradient per iteration of ~60
    sampling steps)."""
    rows = []
    for name, r in PAPER_RECIPES.items():
        net = r["net"]()
        f = network_flops(net, conditional=True)
        per_iter = r["batch"] * (r["K"] * f["langevin_step"] + 2 * f["train_pass"])
        n_bytes = 4 * count_parameters(net)
        rows.append([name, f"{count_parameters(net) / 1e6:.1f} M", f"{f['langevin_step'] / 1e9:.2f}",
                     f"{r['batch']} x {r['K']}", f"{per_iter / 1e12:.1f}", r["gpus"], f"{n_bytes / 1e6:.0f}",
                     f"{per_iter / n_bytes:,.0f}", r["days"]])
    return rows


def paper_cost(cfg) -> dict:
    """The expected GPU-hours of each paper-scale model on ``cfg.paper_gpus`` GPUs (:func:`gpu_hours`): from the
    benchmark's measured rate ``cfg.measured_rate`` (iterations per second of one GPU, per model name or one
    number) when there is one, else the FLOP estimate at ``cfg.flops_per_s`` x ``cfg.utilisation``. Returns
    {name: (recipe, estimate)}."""
    from ebmlib.presets import preset

    paper = preset("12_imagenet", "paper")
    return model_costs(recipes(paper.models), cfg.measured_rate, cfg.flops_per_s, cfg.utilisation, gpus=cfg.paper_gpus)


def paper_cost_lines(cost: Mapping) -> str:
    days = {"imagenet32_cond": 5, "imagenet128_cond": 7}
    lines = [gpu_hours_line(name, r, est) + (f"; the paper: {days[name]} days on 32 GPUs, "
                                             f"{days[name] * 24 * 32:,} GPU-hours" if name in days else "")
             for name, (r, est) in cost.items()]
    return "\n".join(f"* {line}" for line in lines) + (
        "\n* the paper gives days, not iterations: the 100,000 iterations are this book's assumption, and the "
        "ratio of the two columns says how many iterations the paper's days would buy at the assumed rate")


# --------------------------------------------------------------------------------------------------------
# Samples and Table 1

def _eval_data(recipe: ImageNetEBMRecipe, n: int, generator: Optional[torch.Generator],
               test: Optional[ImageData] = None) -> tuple:
    seed = int(torch.randint(2 ** 31, (1,), generator=generator))
    test = test if test is not None else load_split(recipe.dataset, "test", n, seed)
    return load_split(recipe.dataset, "train", n, seed), test


def score_models(clf: nn.Module, models: Mapping, cfg, generator: Optional[torch.Generator] = None,
                 feature: Optional[Mapping] = None, tests: Optional[Mapping[str, ImageData]] = None
                 ) -> tuple[dict, dict]:
    """Table 1's protocol (:func:`~ebmlib.core.model_quality.sample_quality`, chapter 04's) for each model on its
    own data: ``cfg.n_quality[name]`` samples of its replay buffer, of fresh chains of the release's evaluation
    sampler (``cfg.eval[name]``) under the last weights and under the snapshot ensemble, against as many
    training images, with test images and noise as references; ``tests`` (model -> the test split the page has
    already read with :func:`load_split`) saves reading it again. Returns ({model: scores}, {model: samples})."""
    quality, samples = {}, {}
    for name, t in models.items():
        n = cfg.n_quality[name]
        train, test = _eval_data(t.recipe, n, generator, None if tests is None else tests[name])
        quality[name], samples[name] = sample_quality(scorer(clf, t.recipe), {name: t}, train, test, n,
                                                      cfg.eval[name], generator, feature=feature)
    return quality, samples


def quality_table(quality: Mapping[str, Mapping]) -> list[list]:
    """:data:`~ebmlib.core.model_quality.QUALITY_HEADER` rows of every model, its references named with it."""
    rows = []
    for model, scores in quality.items():
        for r in quality_rows(scores):
            rows.append([model, r[0] if r[1] == "" else r[1], *r[2:]])
    return rows


def sample_rows(samples: Mapping, model: str, classes: Sequence[str], per_class: int, max_classes: int) -> dict:
    """Fig. 4 / 18: the ensemble's samples of ``model``, one row per class, for the first ``max_classes``."""
    x, y = ensemble_samples(samples[model], model)
    names = list(classes) + [str(c) for c in range(len(classes), int(y.max()) + 1)]   # labels past the data's names
    return class_rows(x, y, names, per_class, max_classes)


def class_figure(rows: Mapping[str, Tensor], title: str):
    if not rows:
        raise ValueError(f"no images to show for {title!r}")
    size = 0.55 if next(iter(rows.values())).shape[-1] <= 32 else 0.8
    fig = P.image_rows(rows, size=size)
    fig.suptitle(title, fontsize=9, y=1.02)
    return fig


#: the paper's Table 1 (Fig. 5) rows for ImageNet, by image size: (row, IS, FID)
PAPER_TABLE1 = {32: ("ImageNet32 conditional EBM", 18.22, 14.31), 128: ("ImageNet128 conditional EBM", 28.6, 43.7)}

#: the header of :func:`table1_rows`
TABLE1_HEADER = ["row of Table 1", "our model", "our samples", "IS", "FID", "measured by", "paper IS", "paper FID"]


def _image_size(metrics_models: Mapping, model: str) -> int:
    return int(metrics_models[model]["recipe"]["image_size"])


def table1_rows(quality: Mapping[str, Mapping], model_info: Mapping) -> list[list]:
    """Table 1's ImageNet rows: each model's last weights and snapshot ensemble (Inception IS / FID where they ran,
    else the classifier's, labelled) beside the paper's. ``model_info``: the chapter's ``metrics["models"]``."""
    rows = []
    for model, scores in quality.items():
        size, dataset = _image_size(model_info, model), model_info[model]["recipe"]["dataset"]
        label, p_is, p_fid = PAPER_TABLE1[size]
        for key, v in scores.items():
            if not key.startswith(f"{model}: fresh chains"):
                continue
            if "inception_is" in v:
                ours, by = (f"{v['inception_is']:.2f}", f"{v['inception_fid']:.2f}"), f"Inception, {data_name(dataset)}"
            else:
                ours, by = (f"{v['is']:.2f}", f"{v['fid']:.2f}"), f"a classifier of the {data_name(dataset)}"
                if size == 128:
                    by = "the 32x32 classifier on samples area-averaged to 32x32"
            rows.append([label, model, key.split(": ", 1)[1], *ours, by, f"{p_is:.2f}", f"{p_fid:.2f}"])
    return rows


# --------------------------------------------------------------------------------------------------------
# Fig. 8: completions of the bottom half

def completion_inputs(data: ImageData, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """The first image of each of the first ``n`` classes of ``data`` (dequantised) and their labels."""
    first = [int(torch.nonzero(data.labels == c)[0, 0]) for c in range(len(data.classes)) if (data.labels == c).any()]
    idx = torch.tensor(first[:n])
    return dequantize_like(data.images[idx], generator), data.labels[idx]


def dequantize_like(pixels: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """uint8 pixels in [0, 1] as the models saw them in training (the release's centred dequantisation)."""
    return DEQUANTIZERS["centred"](pixels, generator)


def completion_rows(model: nn.Module, sets: Mapping[str, tuple], n_chains: int, n_steps: int,
                    generator: Optional[torch.Generator] = None) -> dict[str, dict[str, Tensor]]:
    """Fig. 8 for each set ("train", "test": (images, labels)): every image's bottom half completed by ``n_chains``
    chains of ``n_steps`` under its own label, the top half clamped (:func:`~ebmlib.core.restore.completions`)."""
    return {name: completions(model, x, n_chains, n_steps, n_images=len(x), y=y, generator=generator,
                              names=[f"{name} {i}" for i in range(len(x))]) for name, (x, y) in sets.items()}


def _pairwise_rms(x: Tensor) -> float:
    flat = x.reshape(x.shape[0], -1)
    d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    k = x.shape[0]
    return float(d.sum() / (k * (k - 1))) if k > 1 else 0.0


def completion_stats(rows: Mapping[str, Tensor], clf: nn.Module, labels: Tensor) -> dict:
    """Fig. 8 measured: over images, the RMS pixel distance between two completions of the same bottom half
    (diversity), from a completion to the true bottom half, and between two draws of the uniform noise they start
    from (what no sampling at all would give); and how often ``clf`` calls a completed image its label."""
    div, truth, comps = [], [], []
    for row in rows.values():
        h = row.shape[-2] // 2
        bottom, real = row[2:, :, h:], row[0, :, h:]
        div.append(_pairwise_rms(bottom))
        truth.append(float((bottom - real).pow(2).mean(dim=(1, 2, 3)).sqrt().mean()))
        comps.append(row[2:])
    k = comps[0].shape[0]
    noise = _pairwise_rms(torch.rand(k, *comps[0].shape[1:], generator=torch.Generator().manual_seed(0))[:, :, h:])
    acc = accuracy(clf, torch.cat(comps), labels.repeat_interleave(k))
    return {"diversity_rms": sum(div) / len(div), "to_truth_rms": sum(truth) / len(truth), "noise_rms": noise,
            "class_accuracy": acc, "n_images": len(rows), "n_chains": k}


def completion_line(name: str, s: Mapping, n_steps: int) -> str:
    return (f"{name}: {s['n_images']} images x {s['n_chains']} completions of {n_steps} steps; two completions of "
            f"the same half differ by {s['diversity_rms']:.3f} RMS (two uniform-noise starts: {s['noise_rms']:.3f}), "
            f"a completion differs from the true half by {s['to_truth_rms']:.3f}; completed images classified as "
            f"their label: {s['class_accuracy']:.1%}")


# --------------------------------------------------------------------------------------------------------
# Summary and the results page

#: the paper-scale run, as the results page and the summary give it (train launches one process per GPU)
PAPER_COMMAND = ("python -m ebmlib data imagenet32 && python -m ebmlib data imagenet && python -m ebmlib train 12 "
                 "--scale paper --out _results && python -m ebmlib reproduce 12 --scale paper --out _results && "
                 "mkdir -p book/results/paper && cp _results/12_imagenet.json book/results/paper/")
#: where a paper-scale run's metrics are committed
PAPER_RECORD_NAME = "book/results/paper/12_imagenet.json"
PAPER_RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", PAPER_RECORD_NAME)


def paper_record(path: Optional[str] = None) -> Optional[dict]:
    """The committed metrics of a paper-scale ImageNet run (:data:`PAPER_RECORD_NAME`), or None when there is none
    (then the ImageNet rows say "not run here" and give :data:`PAPER_COMMAND`)."""
    import json
    path = path or PAPER_RECORD
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    datasets = {m["recipe"]["dataset"] for m in record.get("metrics", {}).get("models", {}).values()}
    return record if datasets and datasets <= {"imagenet32", "imagenet128"} else None


def _single(scores: Mapping, model: str) -> Mapping:
    return scores[f"{model}: fresh chains, last weights"]


def _ensemble(scores: Mapping, model: str) -> Mapping:
    return next(v for k, v in scores.items() if k.startswith(f"{model}: fresh chains") and "ensemble" in k)


def _by_size(metrics: Mapping) -> dict[int, str]:
    return {_image_size(metrics["models"], k): k for k in metrics["models"]}


def summary_rows(metrics: Mapping, imagenet: Optional[Mapping] = None) -> list[list]:
    """This run's numbers, the paper's, and a committed ImageNet run's (``imagenet``: its record, or None: "not run
    here" with the command below the table)."""
    other = imagenet["metrics"] if imagenet is not None else None
    missing = "not run here (the command is below the table)"
    rows = [["classifier test accuracy (the measuring stick)", f"{metrics['classifier_test_accuracy']:.4f}", "-",
             f"{other['classifier_test_accuracy']:.4f}" if other else missing]]
    for size, (label, p_is, p_fid) in PAPER_TABLE1.items():
        mine, theirs = _by_size(metrics).get(size), _by_size(other).get(size) if other else None

        def col(fn, m=mine):
            return fn(metrics["quality"][m], m) if m else "-"

        def ref(fn, m=theirs):
            return fn(other["quality"][m], m) if m else missing
        rows += [
            [f"{label}: last weights, IS / FID (classifier space)", col(lambda q, m: score_text(_single(q, m), False)),
             "not comparable", ref(lambda q, m: score_text(_single(q, m), False))],
            [f"{label}: snapshot ensemble, IS / FID (classifier space)",
             col(lambda q, m: score_text(_ensemble(q, m), False)), "not comparable",
             ref(lambda q, m: score_text(_ensemble(q, m), False))],
            [f"{label}: Inception IS / FID", col(lambda q, m: score_text(_single(q, m), True)),
             f"IS {p_is:.2f} / FID {p_fid:.2f}", ref(lambda q, m: score_text(_single(q, m), True))],
            [f"{label}: samples classified as their class (ensemble)",
             col(lambda q, m: f"{_ensemble(q, m)['conditional_accuracy']:.3f}"), "-",
             ref(lambda q, m: f"{_ensemble(q, m)['conditional_accuracy']:.3f}")],
        ]
    for split in ("train", "test"):
        s, o = metrics["completions"][split], (other["completions"][split] if other else None)
        rows.append([f"Fig. 8, {split} images: completion diversity / distance to the truth (RMS)",
                     f"{s['diversity_rms']:.3f} / {s['to_truth_rms']:.3f}", "qualitative",
                     f"{o['diversity_rms']:.3f} / {o['to_truth_rms']:.3f}" if o else missing])
    return rows


def paper_run_line(imagenet: Optional[Mapping]) -> str:
    if imagenet is None:
        return ("No paper-scale ImageNet run is committed (ImageNet cannot be downloaded on the book's machines). On "
                f"GPUs with the data on disk: `{PAPER_COMMAND}`")
    return f"The last column: the paper-scale ImageNet run of {imagenet['written'][:10]} (`{PAPER_RECORD_NAME}`)."


def _verdict_table1(v: Mapping, p_is: float, p_fid: float) -> str:
    if "inception_is" not in v:
        return "not run here"
    hits = [abs(v["inception_is"] - p_is) <= 0.1 * p_is, abs(v["inception_fid"] - p_fid) <= 0.1 * p_fid]
    return "reproduced" if all(hits) else "partly reproduced" if any(hits) else "not reproduced"


def _run_rows(record: Mapping) -> list[dict]:
    """The results page's rows for one record (the stand-in demo or an ImageNet run)."""
    m = record["metrics"]
    sizes = _by_size(m)
    rows = []
    for size, model in sorted(sizes.items()):
        r = m["models"][model]["recipe"]
        on_imagenet = r["dataset"].startswith("imagenet")
        data = f"{data_name(r['dataset'])}, {r['n_classes']} classes, width {r['width']}, {r['n_iters']} iterations"
        note = "" if on_imagenet else "the stand-in, not ImageNet; scores in a stand-in classifier's feature space"
        q, (label, p_is, p_fid) = m["quality"][model], PAPER_TABLE1[size]
        ens = _ensemble(q, model)
        item = {32: "Fig. 4", 128: "Fig. 18"}[size]
        rows.append(dict(item=item, ours=(f"class-conditional samples of the {len(m['models'][model]['ensemble_iterations'])}"
                                          f"-snapshot ensemble, one row per class; {ens['conditional_accuracy']:.1%} "
                                          "classified as their class"),
                         verdict="shown (qualitative)", note=note, data=data))
        verdict = _verdict_table1(_single(q, model), p_is, p_fid) if on_imagenet else "not run here"
        rows.append(dict(item="Fig. 5 / Table 1", ours=f"{label}: {score_text(_single(q, model), on_imagenet)}",
                         verdict=verdict, note=note or f"{_single(q, model)['n']} samples", data=data))
        if size == 32:
            s = m["completions"]["test"]
            rows.append(dict(item="Fig. 8", ours=(f"bottom halves of test images completed {s['n_chains']} ways: two "
                                                  f"completions differ by {s['diversity_rms']:.3f} RMS, "
                                                  f"{s['class_accuracy']:.1%} classified as the image's class"),
                             verdict="shown (qualitative)", note=note, data=data))
    return rows


#: the "data" of the results page's ImageNet rows while no paper-scale run is committed
IMAGENET_NOT_RUN = "ImageNet at paper scale: no run committed"


def paper_rows(record: Mapping, imagenet: Optional[Mapping] = "committed") -> list[dict]:
    """The results page's rows for this chapter, from its metrics JSON ``record``: an ImageNet record gives its own
    rows (Table 1 reproduced when the Inception IS and FID lie within 10% of the paper's, partly when one does);
    the stand-in record gives its rows, labelled as the stand-in, and the ImageNet rows of Fig. 4, 18 and Table 1
    from the committed paper-scale record (``imagenet``; by default :func:`paper_record`), else "not run here"
    with the command."""
    rows = _run_rows(record)
    datasets = {v["recipe"]["dataset"] for v in record["metrics"]["models"].values()}
    if datasets <= {"imagenet32", "imagenet128"}:
        return rows
    imagenet = paper_record() if imagenet == "committed" else imagenet
    if imagenet is not None:
        return rows + [dict(r, data=r["data"] + f" (paper-scale run of {imagenet['written'][:10]})")
                       for r in _run_rows(imagenet)]
    why = f"ImageNet cannot be downloaded on the book's machines; run `{PAPER_COMMAND}`"
    return rows + [dict(item=item, ours="-", verdict="not run here", note=why, data=IMAGENET_NOT_RUN)
                   for item in ("Fig. 4", "Fig. 5 / Table 1", "Fig. 8", "Fig. 18")]
