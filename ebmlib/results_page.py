"""The results page: every figure and table of the paper beside what the book's runs measured.

The page (``book/results.md``) is generated, never typed: for each item of :data:`PAPER_ITEMS` it takes the rows
that the chapters derive from their committed metrics JSON (``book/results/<chapter>.json``, written by
``python -m ebmlib reproduce <chapter> --in-place``), through each chapter module's ``paper_rows(record)``.
An item no run covers says "not run here" and why. ``python -m ebmlib reproduce ... --in-place`` rebuilds the
page, and ``tests/test_results_page.py`` fails when the committed page and the committed JSON disagree.

The paper's numbers below are quoted from Du & Mordatch (2019) [du2019implicit]; every number in the "ours"
column comes from a run.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Optional

from ebmlib.presets import CHAPTERS

__all__ = ["PAPER_ITEMS", "BEYOND_ITEMS", "VERDICTS", "ROOT", "collect_rows", "render", "write"]

ROOT = Path(__file__).resolve().parents[1]
VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "shown (qualitative)", "not run here")

#: (item, what the paper shows, what it reports, chapter that regenerates it or None, why not, if None)
PAPER_ITEMS = [
    ("Fig. 1", "overview of the method", "diagram", None, "a diagram; the theory page explains it"),
    ("Fig. 2", "energies of samples vs training data", "similar distributions (CIFAR-10)", "03_mnist", ""),
    ("Fig. 3", "unconditional samples: EBM, ensemble, replay buffer", "qualitative (CIFAR-10)", "04_cifar10", ""),
    ("Fig. 4", "conditional ImageNet32 samples", "qualitative", "12_imagenet", ""),
    ("Fig. 5 / Table 1", "Inception Score and FID", "CIFAR-10 uncond. 6.02 / 40.58, ensemble 6.78 / 38.2, "
     "cond. 8.30 / 37.9; ImageNet32 18.22 / 14.31; ImageNet128 28.6 / 43.7", "04_cifar10", ""),
    ("Fig. 6", "restoration: salt and pepper, inpainting, ground-truth start",
     "~10% of objects change from the ground truth, ~30% under noise or inpainting", "03_mnist", ""),
    ("Fig. 7 / 19", "cross-class conversion", "qualitative", "03_mnist", ""),
    ("Fig. 8", "diverse completions of masked images", "qualitative (ImageNet32)", "12_imagenet", ""),
    ("Fig. 9", "OOD AUROC (SVHN, Textures, constant, uniform, interpolation)",
     "EBM 0.63 / 0.48 / 0.30 / 1.0 / 0.70, average 0.62 (PixelCNN++ 0.47, Glow 0.42)", "06_ood_robustness", ""),
    ("Fig. 10", "relative log-likelihood histograms, train vs test vs OOD", "train and test almost identical",
     "06_ood_robustness", ""),
    ("Fig. 11", "adversarial robustness under PGD with the sampling defence",
     "clean accuracy 49.6%; beats Madry's PGD model for L-inf eps > 13", "06_ood_robustness", ""),
    ("Fig. 12 / Table 2", "hand dynamics: Frechet distance per step, EBM vs FC",
     "unconditional EBM 5.96 vs FC 33.28; action-conditional EBM 8.97 vs FC 19.75", "07_robot_hand", ""),
    ("Fig. 13", "hand roll-outs from one start state", "FC stops moving; EBM gives diverse futures",
     "07_robot_hand", ""),
    ("Fig. 14", "2D composition: sampling A, B and A + B", "qualitative", "02_training_2d", ""),
    ("Fig. 15", "dSprites: joint sampling of four conditional EBMs", "close to ground truth except shape",
     "08_composition", ""),
    ("Fig. 16", "zero-shot size x position and shape x position", "the sum generalises; the baseline ignores a latent",
     "08_composition", ""),
    ("Fig. 17", "class-conditional samples", "qualitative (CIFAR-10)", "04_cifar10", ""),
    ("Fig. 18", "ImageNet128 samples from the last 10 snapshots", "qualitative", "12_imagenet", ""),
    ("Fig. 20", "nearest neighbours of samples in the training set", "samples are not copies", "03_mnist", ""),
    ("Fig. 21", "generation from noise over sampling time", "drift to one central object", "03_mnist", ""),
    ("Fig. 22", "continuous-MNIST log-likelihood bounds (nats)",
     "EBM + PCD 380.9 / 482.0; EBM + replay buffer 1925.0 / 2218.3", "05_likelihood", ""),
    ("Fig. 23", "sensitivity to the L2 coefficient and the step size (nats)",
     "L2 0.01: 1519/2370, 0.1: 1925/2218, 1: 1498/2044; step 10: 1498/2044, 100: 1765/2309, 1000: 1740/2009",
     "05_likelihood", ""),
    ("Fig. 24", "the ResNet architectures (A.6)", "diagrams", None,
     "architectures: `ebmlib.core.nets.CIFARResNetEnergy` builds them, tests pin the parameter counts"),
]


#: Results of the chapters that go beyond the paper (the classical EBMs of the tutorials the book grows from):
#: (item, what is claimed, by whom and what it says, chapter). The claims are qualitative where the source gives
#: no number for this setting; the verdict rules are in each chapter's ``paper_rows``.
BEYOND_ITEMS = [
    ("RBM log Z", "AIS against the exact log Z of an RBM small enough to enumerate",
     "AIS's Z estimate is unbiased (Neal 2001); on RBMs it is the standard estimator (Salakhutdinov & Murray 2008)",
     "09_boltzmann"),
    ("RBM likelihood", "CD-1 against more Gibbs steps (CD-k) and persistent chains (PCD), binarised MNIST",
     "CD-k with larger k, and PCD, reach higher test likelihood than CD-1 (Salakhutdinov & Murray 2008; "
     "Tieleman 2008)", "09_boltzmann"),
    ("Denoising", "an EBM as a prior: energy descent with a data-fidelity term",
     "an EBM prefers the cleaner version of a corrupted image (the tutorials' claim; no number)", "10_denoising"),
    ("Anomaly detection", "the energy as an anomaly score against PCA baselines",
     "unusual inputs get high energy (the tutorials' claim; no number)", "10_denoising"),
    ("JEM accuracy and calibration", "a classifier trained as an EBM against the same network trained plainly",
     "accuracy near the plain network's, better calibration (Grathwohl et al. 2020, on CIFAR-10)", "11_jem"),
    ("JEM OOD", "OOD detection by the JEM energy against the maximum softmax probability",
     "the JEM model separates OOD data better (Grathwohl et al. 2020, on CIFAR-10 against SVHN, CIFAR-100, CelebA)",
     "11_jem"),
]


def _load(results_dir: Path) -> dict[str, dict]:
    records = {}
    for path in sorted(results_dir.glob("[0-9][0-9]_*.json")):
        records[path.stem] = json.loads(path.read_text())
    return records


def collect_rows(results_dir: Optional[Path] = None) -> dict[str, list[dict]]:
    """``item -> rows`` from every committed chapter record; a row: ours, verdict, note, chapter, scale, data, when."""
    results_dir = Path(results_dir) if results_dir else ROOT / "book" / "results"
    rows: dict[str, list[dict]] = {}
    for chapter, record in _load(results_dir).items():
        module = importlib.import_module(f"ebmlib.chapters.{CHAPTERS[chapter]}")
        for row in getattr(module, "paper_rows", lambda r: [])(record):
            if row["verdict"] not in VERDICTS:
                raise ValueError(f"{chapter}: verdict {row['verdict']!r} for {row['item']} is not one of {VERDICTS}")
            run = f"{record['written'][:10]}, `{record.get('commit') or 'no commit'}`"
            rows.setdefault(row["item"], []).append(dict(row, chapter=chapter, scale=record["scale"], run=run))
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def render(results_dir: Optional[Path] = None) -> str:
    """The Markdown of the results page."""
    rows = collect_rows(results_dir)
    known = {item for item, *_ in PAPER_ITEMS} | {item for item, *_ in BEYOND_ITEMS}
    stray = sorted(set(rows) - known)
    if stray:
        raise ValueError(f"chapters report rows for items the page does not know: {stray}")
    lines = ["| paper | the paper reports | ours | verdict | run |", "|---|---|---|---|---|"]
    index = ["| paper | regenerated by |", "|---|---|"]
    for item, what, paper, chapter, why in PAPER_ITEMS:
        found = rows.get(item, [])
        for r in found:
            ours = r["ours"] + (f" ({r['note']})" if r.get("note") else "")
            lines.append(f"| **{item}**: {_cell(what)} | {_cell(paper)} | {_cell(ours)} | {r['verdict']} | "
                         f"{r['scale']} scale, {_cell(r['data'])}; {r['run']} |")
        if not found:
            reason = why or f"no committed run of {chapter} reports it"
            lines.append(f"| **{item}**: {_cell(what)} | {_cell(paper)} | - | not run here: {_cell(reason)} | - |")
        index.append(f"| {item} | " + (f"[{chapter}](../notebooks/{chapter}.ipynb)" if chapter else _cell(why))
                     + " |")
    head = ("# Results: the paper beside our runs\n\n"
            "Every row is generated (`ebmlib.results_page`, rebuilt by `python -m ebmlib reproduce --in-place`) from the metrics the chapters wrote when their "
            "committed outputs were made (`book/results/*.json`); the paper's numbers are quoted from "
            "{cite}`du2019implicit`. Demo-scale rows ran on a CPU at reduced size, often on other data than the "
            "paper's (the *run* column says which); a paper-scale row appears once a paper-scale run is committed.\n")
    return "\n".join([head, *lines, "", *_beyond(rows), "## Which chapter regenerates each figure", "", *index, ""])


def _beyond(rows: dict[str, list[dict]]) -> list[str]:
    """The second table: the classical EBMs' results beside what their sources claim."""
    lines = ["## Beyond the paper: the classical EBMs", "",
             "| result | claimed | ours | verdict | run |", "|---|---|---|---|---|"]
    for item, what, claim, chapter in BEYOND_ITEMS:
        for r in rows.get(item, []) or [None]:
            if r is None:
                lines.append(f"| **{item}**: {_cell(what)} | {_cell(claim)} | - | not run here: no committed run of "
                             f"[{chapter}](../notebooks/{chapter}.ipynb) | - |")
                continue
            ours = r["ours"] + (f" ({r['note']})" if r.get("note") else "")
            lines.append(f"| **{item}**: {_cell(what)} | {_cell(claim)} | {_cell(ours)} | {r['verdict']} | "
                         f"{r['scale']} scale, {_cell(r['data'])}; {r['run']} |")
    return lines + [""]


def write(path: Optional[Path] = None, results_dir: Optional[Path] = None) -> Path:
    path = Path(path) if path else ROOT / "book" / "results.md"
    path.write_text(render(results_dir))
    return path
