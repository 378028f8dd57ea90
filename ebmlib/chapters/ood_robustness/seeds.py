"""Chapter 06's verdicts over training seeds: the tables, sentences and verdicts of the seed section.

Each seed's record is :func:`~ebmlib.chapters.ood_robustness.report.seed_run`'s (JSON-ready, so seed keys may be
strings after a round trip): ``auroc`` {in-distribution set: {EBM scorer: average AUROC}}, ``fig10`` (the
test-train gap and the nearest OOD set's distance in mean relative log-likelihood) and ``defence`` {norm:
{``eps``, ``worst``, ``undefended``}}, accuracies per eps. A seed mean counts as above or below a reference only
beyond two standard errors (:func:`ebmlib.core.seeds.beyond_spread`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ebmlib.chapters.ood_robustness.adversarial import norm_name
from ebmlib.core.seeds import beyond_spread, mean_sd, mean_sd_text

__all__ = ["best_scorer", "auroc_seed_table", "defence_gains", "defence_seed_table", "fig9_seed_verdict",
           "fig11_seed_verdict", "fig9_seed_note", "fig10_ratios", "fig11_seed_note",
           "worst_attack_name", "seeds_sentence"]

_SIDE = {1: "above, beyond the spread", 0: "inside the spread", -1: "below, beyond the spread"}


def _per_seed(by_seed: Mapping, get) -> list[float]:
    return [get(record) for record in by_seed.values()]


def _times(ratio: float) -> str:
    return f"{ratio:.1f}" if ratio < 10 else f"{ratio:.0f}"


def best_scorer(by_seed: Mapping, in_name: str) -> str:
    """The EBM scorer of ``in_name`` with the highest seed-mean average AUROC."""
    scorers = next(iter(by_seed.values()))["auroc"][in_name]
    return max(scorers, key=lambda k: mean_sd(_per_seed(by_seed, lambda r: r["auroc"][in_name][k]))[0])


def auroc_seed_table(by_seed: Mapping, baselines: Mapping[str, float]) -> tuple[list, list]:
    """(header, rows): per seed, every EBM scorer's average AUROC, then the mean ± sd over seeds. ``baselines``
    {in-distribution set: the PCA Gaussian's average AUROC}, which does not depend on the EBM's seed, is the last
    column group."""
    first = next(iter(by_seed.values()))["auroc"]
    cols = [(name, scorer) for name in first for scorer in first[name]]
    header = ["seed", *[scorer for _, scorer in cols], *[f"PCA Gaussian ({name})" for name in baselines]]
    rows = [[str(s), *[f"{r['auroc'][n][k]:.3f}" for n, k in cols], *[f"{b:.3f}" for b in baselines.values()]]
            for s, r in by_seed.items()]
    rows.append(["mean ± sd", *[mean_sd_text(_per_seed(by_seed, lambda r, n=n, k=k: r["auroc"][n][k]), ".3f")
                                for n, k in cols], *[f"{b:.3f}" for b in baselines.values()]])
    return header, rows


def defence_gains(by_seed: Mapping, norm: str) -> dict[float, list[float]]:
    """{eps > 0: per seed, the defended EBM's accuracy against its worst attack minus the undefended EBM's}."""
    eps = next(iter(by_seed.values()))["defence"][norm]["eps"]
    return {e: _per_seed(by_seed, lambda r, i=i: r["defence"][norm]["worst"][i] - r["defence"][norm]["undefended"][i])
            for i, e in enumerate(eps) if e > 0}


def defence_seed_table(by_seed: Mapping, norm: str) -> tuple[list, list]:
    """(header, rows): per seed the clean accuracy and, per eps > 0, "defended (worst attack) / undefended";
    then the seed mean of the clean accuracy and of the defence's gain in points."""
    eps = next(iter(by_seed.values()))["defence"][norm]["eps"]
    idx = [i for i, e in enumerate(eps) if e > 0]
    header = ["seed", "clean", *[f"eps {eps[i]:g}" for i in idx]]
    rows = [[str(s), f"{d['worst'][0]:.0%}", *[f"{d['worst'][i]:.0%} / {d['undefended'][i]:.0%}" for i in idx]]
            for s, d in ((s, r["defence"][norm]) for s, r in by_seed.items())]
    gains = defence_gains(by_seed, norm)
    clean = _per_seed(by_seed, lambda r: 100 * r["defence"][norm]["worst"][0])
    rows.append(["mean", f"{mean_sd_text(clean, '.0f')}%",
                 *[f"gain {mean_sd_text([100 * g for g in gains[eps[i]]], '+.0f')} points" for i in idx]])
    return header, rows


def fig9_seed_verdict(by_seed: Mapping, baselines: Mapping[str, float]) -> str:
    """Fig. 9 over seeds: reproduced when, for every in-distribution set, the best EBM's seed-mean average AUROC
    lies above the PCA Gaussian's beyond the spread; partly when for some."""
    above = [beyond_spread(_per_seed(by_seed, lambda r, n=n: r["auroc"][n][best_scorer(by_seed, n)]), b) == 1
             for n, b in baselines.items()]
    return "reproduced" if all(above) else "partly reproduced" if any(above) else "not reproduced"


def fig11_seed_verdict(by_seed: Mapping, norm: str = "linf") -> str:
    """Fig. 11 over seeds: partly reproduced (no adversarially trained baseline here) when the defence's gain
    against its worst attack lies above zero beyond the spread at some eps > 0 and below it at none."""
    sides = [beyond_spread(g) for g in defence_gains(by_seed, norm).values()]
    return "partly reproduced" if 1 in sides and -1 not in sides else "not reproduced"


def fig9_seed_note(by_seed: Mapping, baselines: Mapping[str, float]) -> str:
    """Per in-distribution set: the best EBM's average AUROC over seeds against the PCA Gaussian's."""
    parts = []
    for name, base in baselines.items():
        best = best_scorer(by_seed, name)
        vals = _per_seed(by_seed, lambda r: r["auroc"][name][best])
        parts.append(f"{best}: average AUROC {mean_sd_text(vals, '.3f')} against the PCA Gaussian's {base:.3f} "
                     f"({_SIDE[beyond_spread(vals, base)]})")
    return "; ".join(parts)


def fig10_ratios(by_seed: Mapping) -> list[float]:
    """Per seed: how many times farther the nearest OOD set lies from the training images than the test images
    do (mean relative log-likelihood; Fig. 10's "train and test coincide")."""
    return _per_seed(by_seed, lambda r: r["fig10"]["closest"] / max(r["fig10"]["gap"], 1e-12))


def fig11_seed_note(by_seed: Mapping, norm: str) -> str:
    """The defence's gain against its worst attack per eps > 0, over seeds, inside or beyond the spread."""
    return ", ".join(f"eps {e:g}: {mean_sd_text([100 * g for g in v], '+.0f')} points ({_SIDE[beyond_spread(v)]})"
                     for e, v in defence_gains(by_seed, norm).items())


def worst_attack_name(norm: str, through_norms: Sequence[str]) -> str:
    """What the defended EBM's worst case in ``norm`` is taken over: every attack where PGD through the defence
    ran (``through_norms``), else only the transfers, which can overstate its robustness."""
    return ("its worst attack" if norm in through_norms
            else "its worst transfer attack (PGD through the defence not run in this norm)")


def seeds_sentence(by_seed: Mapping, baselines: Mapping[str, float], norms: Sequence[str],
                   through_norms: Sequence[str]) -> str:
    """The seed section's verdicts in words: Fig. 9 per in-distribution set, Fig. 10's separation, and the
    defence's gain per norm and eps (against :func:`worst_attack_name`), each said to be inside or beyond the
    spread."""
    ratio = fig10_ratios(by_seed)
    text = (f"Over {len(by_seed)} training seeds: {fig9_seed_note(by_seed, baselines)}. Fig. 10: the nearest OOD "
            f"set lies {_times(min(ratio))} to {_times(max(ratio))} times farther from the training images than "
            "the test images do.")
    for norm in norms:
        text += (f" The defence's gain against {worst_attack_name(norm, through_norms)}, {norm_name(norm)}: "
                 f"{fig11_seed_note(by_seed, norm)}.")
    return text
