"""Chapter 11: a classifier trained as an EBM (JEM) against the same network trained as a plain classifier.

For each MNIST-class data set: the JEM model (:class:`~ebmlib.core.jem.JEMRecipe`) and the plain classifier of
the same width (:class:`~ebmlib.core.classifiers.ClassifierRecipe`), then test accuracy, calibration (ECE and
the reliability diagram, :mod:`ebmlib.core.calibration`), samples of the JEM marginal, and OOD detection on
chapter 06's sets (:mod:`ebmlib.data.ood`) by the energy -logsumexp f(x) and by the maximum softmax
probability (Hendrycks & Gimpel 2017, references.bib ``hendrycks2017baseline``).
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from ebmlib.core.calibration import calibration
from ebmlib.core.classifiers import ClassifierRecipe
from ebmlib.core.images import ImageData, dequantize
from ebmlib.core.jem import JEMEnergy, JEMRecipe
from ebmlib.core.recipes import load_or_train_all
from ebmlib.core.restore import generate
from ebmlib.core.samplers import PaperLangevin
from ebmlib.core.scores import auroc
from ebmlib.data.images import load_images
from ebmlib.data.ood import ood_sets

__all__ = ["recipes", "train_models", "train_pair", "logits_of", "evaluate", "classification_metrics", "accuracy_rows", "reliability_figure", "samples_figure",
           "ood_scores", "ood_rows", "ood_sentence", "verdict"]


def recipes(cfg, seed: int = 0) -> dict:
    """The JEM model and the plain classifier of each data set of the preset, by name."""
    train = dict(cfg.jem["train"], **({"seed": seed} if seed else {}))   # seed 0: the shipped recipes
    out = {}
    for ds in cfg.datasets:
        out[f"jem_{ds}"] = JEMRecipe(f"jem_{ds}", ds, **dict(cfg.jem, train=train))
        out[f"jem_plain_{ds}"] = ClassifierRecipe(f"jem_plain_{ds}", ds, seed=seed, **cfg.plain)
    return out


def train_models(cfg, seed: int = 0, only=None, **options) -> dict:
    """Every model of the preset, each loaded from its checkpoint or trained (``python -m ebmlib train 11``);
    ``options``: ``out_dir``, ``shipped_dir``, ``device``, ``progress``, ``log``."""
    return load_or_train_all(recipes(cfg, seed), lambda recipe, done: {"data": load_images(recipe.dataset, "train")},
                             only=only, **options)


def train_pair(cfg, dataset: str, seed: int, out_dir) -> dict:
    """``{"JEM": Trained, "plain": Trained}`` for ``dataset``."""
    trained = train_models(cfg, seed, only=[f"jem_{dataset}", f"jem_plain_{dataset}"], out_dir=out_dir,
                           progress=cfg.progress)
    return {"JEM": trained[f"jem_{dataset}"], "plain": trained[f"jem_plain_{dataset}"]}


def logits_of(model: nn.Module, x: Tensor, batch: int = 1000) -> Tensor:
    net = model.logits if isinstance(model, JEMEnergy) else model
    model.eval()
    with torch.no_grad():
        return torch.cat([net(xb) for xb in x.split(batch)])


def evaluate(models: Mapping[str, object], test: ImageData, n: int, generator: torch.Generator,
             n_bins: int) -> tuple[Tensor, dict]:
    """The dequantised test images and, per model, accuracy, ECE and the calibration bins."""
    x = dequantize(test.images[:n], generator)
    y = test.labels[:n]
    out = {}
    for name, t in models.items():
        logits = logits_of(t.model, x)
        cal = calibration(torch.softmax(logits.double(), 1), y, n_bins)
        out[name] = dict(accuracy=float((logits.argmax(1) == y).float().mean()), ece=cal.ece, calibration=cal)
    return x, out


def classification_metrics(results: Mapping[str, Mapping[str, dict]]) -> dict:
    return {ds: {m: {"accuracy": r["accuracy"], "ece": r["ece"]} for m, r in per.items()}
            for ds, per in results.items()}


def accuracy_rows(results: Mapping[str, Mapping[str, dict]]) -> tuple[list[str], list[list]]:
    header = ["data set", "model", "test accuracy", "ECE"]
    rows = [[ds, name, r["accuracy"], r["ece"]] for ds, per in results.items() for name, r in per.items()]
    return header, rows


def reliability_figure(results: Mapping[str, Mapping[str, dict]]):
    """Accuracy against confidence per bin, one panel per data set; the diagonal is perfect calibration."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.3 * len(results), 3.2), squeeze=False)
    for ax, (ds, per) in zip(axes[0], results.items()):
        for name, r in per.items():
            c = r["calibration"]
            mid = (c.edges[1:] + c.edges[:-1]) / 2
            used = c.count > 0
            ax.plot(mid[used], c.accuracy[used], marker="o", ms=3, label=f"{name} (ECE {r['ece']:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_title(ds, fontsize=9)
        ax.set_xlabel("confidence", fontsize=8)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("accuracy", fontsize=8)
    fig.tight_layout()
    return fig


def _tiles(x: Tensor, cols: int) -> Tensor:
    """(n, 1, 28, 28) images as one (rows * 28, cols * 28) picture, row by row (blank cells at the end)."""
    rows = -(-len(x) // cols)
    pad = torch.ones(rows * cols - len(x), *x.shape[1:]) if rows * cols > len(x) else x[:0]
    grid = torch.cat([x, pad])[:, 0].reshape(rows, cols, *x.shape[2:])
    return grid.permute(0, 2, 1, 3).reshape(rows * x.shape[2], cols * x.shape[3])


def samples_figure(jems: Mapping[str, object], n: int, n_steps: int, step: Mapping, seed: int, cols: int = 4):
    """Per data set: the newest replay-buffer samples of training, and ``n_steps`` of SGLD from noise, each as a
    grid of ``cols`` columns."""
    fig, axes = plt.subplots(1, 2 * len(jems), figsize=(2.4 * 2 * len(jems), 2.4), squeeze=False)
    panels = []
    for ds, t in jems.items():
        sampler = PaperLangevin(step["step_size"], step["noise_std"], step["grad_clip"])
        fresh = generate(t.model, n, n_steps, sampler=sampler, generator=torch.Generator().manual_seed(seed))
        panels += [(f"{ds}: replay buffer", t.samples[-n:]), (f"{ds}: {n_steps} SGLD steps from noise", fresh)]
    for ax, (title, x) in zip(axes[0], panels):
        ax.imshow(_tiles(x[:n].cpu(), cols).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def ood_scores(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Higher = more OOD: the energy -logsumexp f(x), and 1 - max softmax probability."""
    logits = logits_of(model, x).double()
    return {"energy": -torch.logsumexp(logits, 1), "1 - max softmax": 1 - torch.softmax(logits, 1).max(1).values}


def ood_rows(models: Mapping[str, object], dataset: str, x_test: Tensor, n: int,
             generator: torch.Generator) -> tuple[dict, list[list]]:
    """AUROC of each model and score on each of chapter 06's OOD sets for ``dataset`` in distribution."""
    sets = ood_sets(dataset, x_test[:n], n, generator)
    table, rows = {}, []
    for name, t in models.items():
        clean = ood_scores(t.model, x_test[:n])
        for set_name, x in sets.items():
            s = ood_scores(t.model, x)
            for score in clean:
                table[f"{name} | {score} | {set_name}"] = auroc(clean[score], s[score])
        for score in clean:
            rows.append([dataset, name, score, *[table[f"{name} | {score} | {k}"] for k in sets]])
    return {"sets": list(sets), "auroc": table}, rows


def ood_sentence(ood: Mapping[str, dict]) -> str:
    """Which score separates best per data set, and the sets where a score ranks OOD inputs as MORE typical."""
    parts = []
    for ds, o in ood.items():
        a, sets = o["auroc"], o["sets"]
        means = {}
        for key, v in a.items():
            model, score, _ = key.split(" | ")
            means.setdefault((model, score), []).append(v)
        best = max(means, key=lambda k: sum(means[k]) / len(means[k]))
        text = f"{ds}: the best mean AUROC is {best[0]}'s {best[1]} ({sum(means[best]) / len(sets):.3f})"
        inverted = [k.split(" | ") for k, v in a.items() if v < 0.5]
        if inverted:
            text += "; below 0.5 (OOD inputs look more typical than test images): " + ", ".join(
                f"{m}'s {sc} on {st}" for m, sc, st in inverted)
        parts.append(text)
    return "; ".join(parts) + "."


def verdict(results: Mapping[str, Mapping[str, dict]], ood: Mapping[str, dict]) -> str:
    """What this run says about JEM's claims: accuracy kept, calibration improved, OOD by energy."""
    parts = []
    for ds, per in results.items():
        j, p = per["JEM"], per["plain"]
        parts.append(f"{ds}: JEM accuracy {j['accuracy']:.4f} vs plain {p['accuracy']:.4f}; ECE {j['ece']:.3f} vs "
                     f"{p['ece']:.3f} ({'better' if j['ece'] < p['ece'] else 'not better'} calibrated)")
        a = ood[ds]["auroc"]
        mean = {k: sum(v for key, v in a.items() if key.startswith(k)) / len(ood[ds]["sets"])
                for k in ("JEM | energy", "JEM | 1 - max softmax", "plain | 1 - max softmax")}
        parts.append(f"mean OOD AUROC: JEM by energy {mean['JEM | energy']:.3f}, JEM by max softmax "
                     f"{mean['JEM | 1 - max softmax']:.3f}, plain by max softmax {mean['plain | 1 - max softmax']:.3f}")
    return "; ".join(parts) + "."


def paper_rows(record: Mapping) -> list[dict]:
    """The results page's rows: accuracy and calibration (reproduced when JEM is within 1 point of the plain
    accuracy and has the lower ECE on every data set), and OOD (reproduced when JEM's energy has the higher mean
    AUROC than the plain classifier's max softmax on every data set; partly when on some)."""
    m = record["metrics"]
    cls = m["classification"]
    ok = [abs(v["JEM"]["accuracy"] - v["plain"]["accuracy"]) <= 0.01 and v["JEM"]["ece"] < v["plain"]["ece"]
          for v in cls.values()]
    ours = "; ".join(f"{ds}: accuracy {v['JEM']['accuracy']:.4f} vs {v['plain']['accuracy']:.4f}, ECE "
                     f"{v['JEM']['ece']:.3f} vs {v['plain']['ece']:.3f}" for ds, v in cls.items())
    rows = [dict(item="JEM accuracy and calibration", ours=f"JEM vs plain, {ours}", data="MNIST, Fashion-MNIST",
                 verdict="reproduced" if all(ok) else "partly reproduced" if any(ok) else "not reproduced")]
    means = {}
    for ds, o in m["ood"].items():
        a, n = o["auroc"], len(o["sets"])
        means[ds] = tuple(sum(v for key, v in a.items() if key.startswith(prefix)) / n
                          for prefix in ("JEM | energy", "plain | 1 - max softmax"))
    won = [j > p for j, p in means.values()]
    ours = "; ".join(f"{ds}: {j:.3f} vs {p:.3f}" for ds, (j, p) in means.items())
    rows.append(dict(item="JEM OOD", ours=f"mean AUROC, JEM energy vs plain max softmax: {ours}",
                     data="chapter 06's MNIST-class OOD sets",
                     verdict="reproduced" if all(won) else "partly reproduced" if any(won) else "not reproduced"))
    return rows
