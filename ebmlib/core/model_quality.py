"""Table 1's protocol for trained image EBMs: each model sampled three ways (its replay buffer, fresh chains of the
release's evaluation sampler under the last weights, the same chains under the historical ensemble), scored by a
classifier's IS / FID (and Inception's where its weights are at hand), with held-out images and uniform noise as
references. Chapters 04 (CIFAR-10) and 12 (ImageNet) share it, so both score samples the same way.

* :func:`sample_scores`: the scores of one set of images; :func:`sample_quality`: every model and protocol.
* :func:`ensemble_samples`, :func:`class_rows`: the scored sample sets, for the figures.
* :func:`inception_networks`: the paper's Inception IS / FID networks where the preset asks for them.
* :class:`Resized`: a classifier of small images that also reads larger ones (area-averaged down first), so a
  32x32 classifier scores 128x128 samples (labelled as such where it is used).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmlib.core.classifiers import accuracy
from ebmlib.core.ensemble import evaluation_samples
from ebmlib.core.images import ImageData
from ebmlib.core.quality import classifier_fid, classifier_inception_score, inception_fid, inception_score

__all__ = ["Resized", "sample_scores", "sample_quality", "QUALITY_HEADER", "quality_rows", "ensemble_samples",
           "class_rows", "inception_networks", "inception_line", "score_text"]


class Resized(nn.Module):
    """``classifier`` (with ``features`` / ``head`` / ``num_features``) on images area-averaged to ``size`` x
    ``size`` first; images already that size pass unchanged."""

    def __init__(self, classifier: nn.Module, size: int):
        super().__init__()
        self.classifier, self.size = classifier, size
        self.num_features = classifier.num_features

    def _resize(self, x: Tensor) -> Tensor:
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        return F.adaptive_avg_pool2d(x, self.size)

    def features(self, x: Tensor) -> Tensor:
        return self.classifier.features(self._resize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self._resize(x))


def sample_scores(clf: nn.Module, real: Tensor, x: Tensor, y: Optional[Tensor] = None,
                  feature: Optional[Mapping] = None) -> dict:
    """Classifier-space FID against ``real`` and IS of images ``x``; the accuracy of ``clf`` on the labels ``y``
    they were drawn for (conditional samples); Inception IS / FID where ``feature`` = {"logits", "pool"}."""
    is_mean, is_std = classifier_inception_score(clf, x)
    entry = {"fid": classifier_fid(clf, real, x), "is": is_mean, "is_std": is_std, "n": int(x.shape[0])}
    if y is not None:
        entry["conditional_accuracy"] = accuracy(clf, x, y)
    if feature is not None:
        entry["inception_is"], entry["inception_is_std"] = inception_score(x, feature["logits"])
        entry["inception_fid"] = inception_fid(real, x, feature["pool"])
    return entry


def sample_quality(clf: nn.Module, models: Mapping, train: ImageData, test: ImageData, n: int, spec: Mapping,
                   generator: Optional[torch.Generator] = None, feature: Optional[Mapping] = None
                   ) -> tuple[dict, dict]:
    """Table 1 on ``n`` samples per protocol against ``n`` training images: classifier-space FID and IS (and
    Inception IS / FID where ``feature`` = {"logits": ..., "pool": ...} networks are given), conditional accuracy.

    ``models``: name -> trained model (``.model`` a :class:`~ebmlib.core.ensemble.SnapshotEnergy`, ``.samples``
    its buffer, ``.recipe``). Protocols per model: its replay buffer at the end of training; the release's
    evaluation sampler (``spec``) with the last weights; the same with the snapshot ensemble taking turns.
    References: held-out test images and uniform noise. Returns (scores by "<model>: <protocol>", the scored
    images by the same keys)."""
    real = train.subset(n, generator).continuous(generator)
    refs = {"test images (reference)": (test.subset(n, generator).continuous(generator), None),
            "uniform noise (reference)": (torch.rand(n, *real.shape[1:], generator=generator), None)}
    scores = {k: sample_scores(clf, real, x, None, feature) for k, (x, _) in refs.items()}
    samples = {}
    for key, t in models.items():
        cond = t.recipe.conditional
        sets = {"replay buffer": (t.samples[:n], None)}
        sets["fresh chains, last weights"] = evaluation_samples([t.model.net], n, spec, cond, generator)
        sets[f"fresh chains, {len(t.model.members())}-snapshot ensemble"] = evaluation_samples(
            t.model.members(), n, spec, cond, generator)
        for how, (x, y) in sets.items():
            scores[f"{key}: {how}"] = sample_scores(clf, real, x, y, feature)
            samples[f"{key}: {how}"] = (x, y)
    return scores, samples


#: the header of :func:`quality_rows`
QUALITY_HEADER = ["model", "samples", "n", "FID (classifier)", "IS (classifier)", "conditional accuracy",
                  "Inception IS", "Inception FID"]


def quality_rows(quality: Mapping[str, dict]) -> list[list]:
    rows = []
    for name, v in quality.items():
        model, how = (name, "") if name.endswith("(reference)") else name.split(": ", 1)
        acc = v.get("conditional_accuracy")
        rows.append([model, how, v["n"], f"{v['fid']:.2f}", f"{v['is']:.2f} ± {v['is_std']:.2f}",
                     "-" if acc is None else f"{acc:.3f}",
                     f"{v['inception_is']:.2f}" if "inception_is" in v else "not run",
                     f"{v['inception_fid']:.2f}" if "inception_fid" in v else "not run"])
    return rows


def ensemble_samples(quality_samples: Mapping[str, tuple], model: str) -> tuple[Tensor, Optional[Tensor]]:
    """(images, labels) that :func:`sample_quality` drew from ``model``'s snapshot ensemble (section 4.1)."""
    for k, v in quality_samples.items():
        who, how = k.split(": ", 1)
        if who == model and "ensemble" in how:
            return v
    raise KeyError(f"no ensemble samples of model {model!r}; there are {sorted(quality_samples)}")


def class_rows(x: Tensor, labels: Tensor, classes: Sequence[str], per_class: int,
               max_classes: Optional[int] = None) -> dict[str, Tensor]:
    """Fig. 5 / 17 / 4 / 18: the first ``per_class`` samples of each class, one row per class (fewer where a class
    drew fewer samples), for the first ``max_classes`` classes that drew any (all when None)."""
    rows = {}
    for c, name in enumerate(classes):
        picked = x[labels == c][:per_class]
        if len(picked):
            rows[name] = picked
        if max_classes is not None and len(rows) >= max_classes:
            break
    return rows


def inception_networks(wanted: bool) -> Optional[dict]:
    """The Inception networks of IS (logits) and FID (pool_3) when the preset asks for them (paper scale), else
    None; raises :class:`~ebmlib.core.quality.InceptionUnavailable`, with the fix, where they are missing, before
    anything is trained."""
    if not wanted:
        return None
    from ebmlib.core.quality import inception_feature
    return {"logits": inception_feature("logits_unbiased"), "pool": inception_feature("2048")}


def inception_line(networks: Optional[Mapping]) -> str:
    if networks is None:
        return ("Inception IS / FID: off at this scale (the book's machines cannot download the Inception weights); "
                "the scores below are a classifier's, labelled as such")
    return "Inception IS / FID: torchmetrics with torch-fidelity's Inception weights (pt_inception-2015-12-05)"


def score_text(v: Mapping, inception: bool) -> str:
    """"IS a / FID b" of one scored sample set: Inception's (or "Inception not run") or the classifier's."""
    if inception:
        return (f"IS {v['inception_is']:.2f} / FID {v['inception_fid']:.2f}" if "inception_is" in v
                else "Inception not run")
    return f"IS {v['is']:.2f} / FID {v['fid']:.2f}"
