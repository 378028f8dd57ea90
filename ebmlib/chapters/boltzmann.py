"""Chapter 09: restricted Boltzmann machines on binarised MNIST, trained by CD-k and PCD, scored exactly or by AIS.

Binarised MNIST: each pixel is 1 with probability (its grey level / 255), drawn once with a fixed seed
(stochastic binarisation, as Salakhutdinov & Murray 2008 score RBMs, references.bib
``salakhutdinov2008quantitative``). Log-likelihoods are in nats per image over {0, 1}^784: a discrete
distribution, not the dequantised densities of chapter 05, so the two chapters' numbers are not comparable.
"""
from __future__ import annotations

import time
from typing import Mapping

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ebmlib.core.rbm import BernoulliRBM, RBMTrainConfig, ais_log_z, exact_log_z, train_rbm
from ebmlib.data.images import load_images

__all__ = ["binarised_mnist", "data_log_odds", "train_all", "exact_check", "exact_table", "ais_table",
           "model_table", "model_sentence", "filters_figure", "samples_figure", "mean_log_likelihood", "summary_line"]


def binarised_mnist(split: str, n: int, seed: int) -> Tensor:
    """The first ``n`` images of MNIST ``split`` as float {0, 1} rows (N, 784), stochastically binarised."""
    images = load_images("mnist", split).images[:n].reshape(-1, 784).to(torch.float32) / 255.0
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))


def data_log_odds(data: Tensor, eps: float = 1e-3) -> Tensor:
    """The base RBM's visible biases for AIS: the log-odds of each pixel's mean, clipped away from 0 and 1."""
    p = data.mean(0).clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def train_all(models: Mapping[str, Mapping], train: Tensor, seed: int) -> dict:
    """``{name: {"rbm", "history", "seconds", "spec"}}`` for each spec (``n_hidden`` + RBMTrainConfig fields);
    every model starts from the same weights of its size (seeded) so methods differ only in their updates."""
    out = {}
    for name, spec in models.items():
        spec = dict(spec)
        rbm = BernoulliRBM(train.shape[1], spec.pop("n_hidden"), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            rbm.b.copy_(data_log_odds(train))   # Hinton's guide: visible biases at the data's log-odds
        t0 = time.perf_counter()
        history = train_rbm(rbm, train, RBMTrainConfig(seed=seed, **spec))
        out[name] = dict(rbm=rbm, history=history, seconds=time.perf_counter() - t0, spec=dict(models[name]))
    return out


def mean_log_likelihood(rbm: BernoulliRBM, data: Tensor, log_z: float) -> float:
    with torch.no_grad():
        return float((-rbm.free_energy(data)).mean()) - log_z


def exact_check(rbm: BernoulliRBM, train: Tensor, test: Tensor, n_chains: int, temps: list[int],
                seed: int) -> dict:
    """AIS against the exact log Z of an RBM small enough to enumerate, at several numbers of temperatures,
    from the uniform base and from the data's base."""
    truth = exact_log_z(rbm)
    rows = []
    for base_name, base in (("uniform", None), ("data log-odds", data_log_odds(train))):
        for k in temps:
            r = ais_log_z(rbm, n_chains, k, base, torch.Generator().manual_seed(seed))
            rows.append(dict(base=base_name, n_temps=k, log_z=r.log_z, se=r.log_z_se, ess=r.ess,
                             error=r.log_z - truth, within_3se=abs(r.log_z - truth) <= 3 * r.log_z_se))
    return dict(exact_log_z=truth, exact_test_ll=mean_log_likelihood(rbm, test, truth),
                exact_train_ll=mean_log_likelihood(rbm, train, truth), rows=rows)


def exact_table(check: Mapping, n_hidden: int) -> tuple[list[str], list[list], str]:
    """Section 1's table: (header, rows, caption)."""
    header = ["AIS base", "intermediate RBMs", "log Z (AIS)", "SE", "ESS", "AIS - exact", "within 3 SE"]
    rows = [[r["base"], r["n_temps"], r["log_z"], r["se"], r["ess"], r["error"], "yes" if r["within_3se"] else "no"]
            for r in check["rows"]]
    caption = (f"**{n_hidden} hidden units**: exact log Z = {check['exact_log_z']:.2f}; exact test log-likelihood "
               f"{check['exact_test_ll']:.2f} nats per image (train {check['exact_train_ll']:.2f}).")
    return header, rows, caption


def model_table(scores: Mapping[str, dict], n_temps: int, n_chains: int) -> tuple[list[str], list[list], str]:
    """Section 2's table: (header, rows, caption)."""
    header = ["model", "log Z (AIS)", "ESS", "train log p", "test log p", "reconstruction error", "train s"]
    rows = [[name, s["log_z"], s["ess"], s["train_ll"], s["test_ll"], s["recon"], s["seconds_train"]]
            for name, s in scores.items()]
    caption = (f"AIS with {n_temps} intermediate RBMs and {n_chains} chains from the data base; log p in nats per "
               "image (upper bounds in expectation, since AIS's log Z is biased low).")
    return header, rows, caption


def model_sentence(scores: Mapping[str, dict], min_ess: float = 10.0) -> str:
    """Section 2's verdict: the models by AIS test log-likelihood, and which of them rest on a small ESS."""
    order = sorted(scores, key=lambda k: -scores[k]["test_ll"])
    text = "By AIS test log-likelihood: " + " > ".join(f"{k} ({scores[k]['test_ll']:.1f})" for k in order) + "."
    weak = [k for k in order if scores[k]["ess"] < min_ess]
    if weak:
        text += (f" The AIS ESS of {', '.join(weak)} is below {min_ess:g} chains: its number is an upper bound in "
                 "expectation at best, and may be far from the truth.")
    by_recon = sorted(scores, key=lambda k: scores[k]["recon"])
    if by_recon != order:
        text += f" Reconstruction error ranks them {' < '.join(by_recon)}: not the likelihood's order."
    return text


def summary_line(check: Mapping, scores: Mapping[str, dict]) -> str:
    best = max(scores, key=lambda k: scores[k]["test_ll"])
    hits = sum(r["within_3se"] for r in check["rows"])
    return (f"AIS on the enumerable RBM: {hits} of {len(check['rows'])} settings within 3 SE of the exact log Z. "
            f"Highest AIS test log-likelihood: **{best}** ({scores[best]['test_ll']:.1f} nats per image).")


def ais_table(trained: Mapping[str, dict], train: Tensor, test: Tensor, n_chains: int, n_temps: int,
              seed: int) -> dict:
    """Per model: AIS log Z (data base) with its SE and ESS, and the train / test log-likelihoods it implies
    (stochastic upper bounds on the true ones, since AIS's log Z is biased low)."""
    base = data_log_odds(train)
    out = {}
    for name, t in trained.items():
        r = ais_log_z(t["rbm"], n_chains, n_temps, base, torch.Generator().manual_seed(seed))
        out[name] = dict(log_z=r.log_z, se=r.log_z_se, ess=r.ess, seconds_train=t["seconds"],
                         train_ll=mean_log_likelihood(t["rbm"], train, r.log_z),
                         test_ll=mean_log_likelihood(t["rbm"], test, r.log_z),
                         recon=t["history"][-1]["reconstruction_error"])
    return out


def _grid(ax, images: Tensor, rows: int, cols: int) -> None:
    tiles = images[:rows * cols].reshape(rows, cols, 28, 28).permute(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    ax.imshow(tiles.numpy(), cmap="gray")
    ax.axis("off")


def filters_figure(trained: Mapping[str, dict], n: int = 36):
    """The first ``n`` hidden units' weights (columns of W) of each model, each scaled to its own range."""
    fig, axes = plt.subplots(1, len(trained), figsize=(3.2 * len(trained), 3.4), squeeze=False)
    for ax, (name, t) in zip(axes[0], trained.items()):
        side = int(min(n, t["rbm"].n_hidden) ** 0.5)
        w = t["rbm"].W.detach().T[:side * side]
        w = (w - w.amin(1, keepdim=True)) / (w.amax(1, keepdim=True) - w.amin(1, keepdim=True) + 1e-12)
        _grid(ax, w, side, side)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


def samples_figure(trained: Mapping[str, dict], n: int, steps: int, seed: int):
    """Each model's p(v | h) after ``steps`` block Gibbs sweeps from uniform noise (the mean image of the last
    sweep, as RBM samples are usually shown)."""
    fig, axes = plt.subplots(1, len(trained), figsize=(3.2 * len(trained), 3.4), squeeze=False)
    side = int(n ** 0.5)
    for ax, (name, t) in zip(axes[0], trained.items()):
        g = torch.Generator().manual_seed(seed)
        rbm = t["rbm"]
        v = rbm.sample(torch.bernoulli(torch.full((side * side, rbm.n_visible), 0.5), generator=g), steps, g)
        with torch.no_grad():
            mean = rbm.visible_probs(torch.bernoulli(rbm.hidden_probs(v), generator=g))
        _grid(ax, mean, side, side)
        ax.set_title(f"{name}: {steps} Gibbs sweeps", fontsize=9)
    fig.tight_layout()
    return fig


def paper_rows(record: Mapping) -> list[dict]:
    """The results page's rows: AIS against the exact log Z (reproduced when every setting with an ESS of at
    least 10 chains lands within 3 SE), and CD-1 against CD-k and PCD by AIS test log-likelihood (reproduced
    when every other method beats CD-1 with an ESS of at least 10, partly when the order holds on a smaller ESS)."""
    m = record["metrics"]
    rows = m["exact"]["rows"]
    trusted = [r for r in rows if r["ess"] >= 10]
    ok = bool(trusted) and all(r["within_3se"] for r in trusted)
    exact = dict(item="RBM log Z", verdict="reproduced" if ok else "not reproduced",
                 ours=(f"exact {m['exact']['exact_log_z']:.2f}; AIS within 3 SE in {sum(r['within_3se'] for r in rows)}"
                       f" of {len(rows)} settings, in {sum(r['within_3se'] for r in trusted)} of the {len(trusted)} "
                       "with ESS >= 10"), data="binarised MNIST")
    models = m["models"]
    cd1 = models.get("CD-1")
    if cd1 is None:
        return [exact]
    others = {k: v for k, v in models.items() if k != "CD-1"}
    beats = all(v["test_ll"] > cd1["test_ll"] for v in others.values())
    solid = all(v["ess"] >= 10 for v in models.values())
    verdict = ("reproduced" if beats and solid else "partly reproduced" if beats else "not reproduced")
    ours = "; ".join(f"{k} {v['test_ll']:.1f} (ESS {v['ess']:.0f})" for k, v in models.items())
    return [exact, dict(item="RBM likelihood", verdict=verdict, ours=f"AIS test log p, nats: {ours}",
                        note="an ESS below 10 makes that number weak evidence", data="binarised MNIST")]
