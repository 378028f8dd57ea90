"""Chapter 11 (JEM on MNIST-class data): sizes per scale.

``jem``: the fields of ``ebmlib.core.jem.JEMRecipe`` (``train``: TrainConfig fields); ``plain``: the
``ClassifierRecipe`` fields of the same network trained on cross-entropy alone. The demo's SGLD follows JEM's
(step 1 on the unclipped gradient, noise 0.01; Grathwohl et al. 2020) with 10 steps instead of 20 and a
narrower network so a CPU trains each model in minutes; alpha = 0.1 keeps a little of section 3.3's L2 term
(JEM has none) for stability. DEMO is written out whole; SMOKE and PAPER name only the keys they change.
"""

_SGLD = dict(step_size=1.0, noise_std=0.01, grad_clip=None)

DEMO = dict(
    threads=1, device="cpu", progress=False, datasets=("mnist", "fashion"),
    jem=dict(width=16, n_iters=1500, ce_weight=1.0, keep_buffer=256,
             train=dict(batch_size=64, n_steps=10, lr=1e-3, betas=(0.9, 0.999), alpha=0.1,
                        buffer_capacity=10000, checkpoint_every=100, **_SGLD)),
    plain=dict(width=16, epochs=2, batch_size=128, lr=1e-3, n_train=None),
    n_test=10000, n_bins=15, n_ood=2000, n_samples=12, sample_steps=200,
)

SMOKE = dict(
    datasets=("mnist",),
    jem=dict(width=4, n_iters=4, ce_weight=1.0, keep_buffer=16,
             train=dict(batch_size=16, n_steps=2, lr=1e-3, betas=(0.9, 0.999), alpha=0.1,
                        buffer_capacity=200, checkpoint_every=2, **_SGLD)),
    plain=dict(width=4, epochs=1, batch_size=128, lr=1e-3, n_train=1000),
    n_test=200, n_bins=10, n_ood=64, n_samples=4, sample_steps=5,
)

PAPER = dict(
    threads=None, device="auto", progress=True,
    jem=dict(width=32, n_iters=20000, ce_weight=1.0, keep_buffer=1000,
             train=dict(batch_size=64, n_steps=20, lr=1e-4, betas=(0.9, 0.999), alpha=0.0,
                        buffer_capacity=10000, checkpoint_every=500, **_SGLD)),
    plain=dict(width=32, epochs=20, batch_size=128, lr=1e-3, n_train=None),
    sample_steps=1000,
)

# CI runs the paper branch with these sizes
PAPER_SHRUNK = {"jem.n_iters": 2, "jem.width": 4, "jem.train.batch_size": 8, "jem.train.n_steps": 2,
                "jem.keep_buffer": 8, "plain.epochs": 1, "plain.width": 4, "plain.n_train": 500, "n_test": 100,
                "n_ood": 32, "n_samples": 4, "sample_steps": 3}
