"""Chapter 10 (denoising with an EBM prior; energy as an anomaly score): sizes per scale.

``model`` is chapter 03's unconditional MNIST recipe at the same scale (read from its preset, so the demo uses
the same shipped checkpoint); ``other`` the data set of the "other data set" anomalies. Noise standard deviations
``stds`` and the fidelity weights ``lams`` in pixel units of [0, 1] images; descent uses ``step_size`` without a
gradient clip (A.7's clip of 0.01 never bound in the demo's runs). DEMO is written out whole; SMOKE and PAPER
name only the keys they change (each replaces DEMO's value whole).
"""
from ebmlib.presets import mnist as _mnist

_MODEL = "mnist_uncond_replay"

DEMO = dict(
    threads=1, device="cpu", progress=False,
    models={_MODEL: _mnist.DEMO["models"][_MODEL]}, other="fashion",
    n_images=200, stds=(0.1, 0.2, 0.3, 0.5), lams=(0.0, 0.001, 0.003, 0.01, 0.03, 0.1),
    n_steps=60, step_size=10.0, langevin_steps=60, blur_sigmas=(0.5, 0.75, 1.0, 1.5, 2.0),
    example_std=0.3, n_anomaly=1000, pca_components=50, pca_train=20000, patch=6,
)

SMOKE = dict(
    models={_MODEL: _mnist.SMOKE["models"][_MODEL]},
    n_images=16, stds=(0.1, 0.5), lams=(0.0, 0.01), n_steps=3, langevin_steps=3, blur_sigmas=(1.0,),
    example_std=0.5, n_anomaly=64, pca_components=8, pca_train=500,
)

PAPER = dict(
    threads=None, device="auto", progress=True,
    models={_MODEL: _mnist.PAPER["models"][_MODEL]},
    n_images=10000, n_steps=200, langevin_steps=200, n_anomaly=10000, pca_components=100, pca_train=60000,
)

# CI runs the paper branch with these sizes (chapter 03's shrunk paper model, a few images and steps)
PAPER_SHRUNK = {
    **{k: v for k, v in _mnist.PAPER_SHRUNK.items() if k.startswith(f"models.{_MODEL}.")},
    "n_images": 8, "n_steps": 2, "langevin_steps": 2, "n_anomaly": 32, "pca_components": 4, "pca_train": 100,
}
