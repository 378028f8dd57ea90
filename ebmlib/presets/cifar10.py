"""Chapter 04 (CIFAR-10, section 4.1 / 4.2): sizes per scale.

``models`` maps a recipe name to the fields of ``ebmlib.chapters.cifar10.CIFAREBMRecipe`` (an image-EBM recipe
that also keeps ``ensemble`` weight snapshots ``ensemble_every`` iterations apart for section 4.1's historical
ensemble); ``train`` holds the ``TrainConfig`` fields of Algorithm 1. ``dataset``: ``"cifar10"`` at paper scale,
``"photo_crops"`` (``ebmlib.data.standin``, the offline stand-in of 32x32 colour photographs, **not CIFAR-10**) at
smoke and demo scale, because CIFAR-10 cannot be downloaded on the book's machines. A shipped checkpoint
(``ebmlib/checkpoints/<name>.pt``) is used only when its stored recipe equals one of these exactly. DEMO is
written out whole; SMOKE and PAPER name only the keys they change (each replaces DEMO's value whole).
"""

# Demo: the A.6 networks at width 12 (ResNet32Large, uncond.) and 16 (ResNet32, cond.), A.7's sampler (step 10,
# noise 0.005, clip 0.01, buffer 10,000 with 5% restarts, alpha 1, Adam betas (0, 0.999)) with K = 30 and batch
# 32, lr 1e-3 (chapter 03's demo rate; A.7's 1e-4 is for 40,000 iterations); the ensemble's 10 snapshots 50
# iterations apart (the release: 300 of 40,000), in float16 to keep the shipped files small. Iterations: sized to
# <= 35 min of one shared CPU thread each (measured while training: ~1.5 s per iteration unconditional, ~1.3 s
# conditional, on a 2-core machine shared with other jobs)
_DEMO = dict(dataset="photo_crops", keep_buffer=500, ensemble=10, ensemble_every=50, ensemble_dtype="float16")
_DEMO_TRAIN = dict(batch_size=32, n_steps=30, lr=1e-3, channels_last=True, checkpoint_every=100, init="replay")

# the release's evaluation sampler: chains in rounds of `steps` Langevin steps (step 10, noise 0.005, clip 0.05),
# re-initialising a fraction of the chains to noise (and of the labels) after each round but the last `settle`
# (the demo: 10 rounds, the last 3 settling; the release: 200 rounds, the last 10)
_DEMO_EVAL = dict(rounds=10, steps=20, reinit=0.01, relabel=0.1, settle=3, step_size=10.0, noise_std=0.005,
                  grad_clip=0.05, batch=500)

DEMO = dict(
    threads=1, device="cpu", progress=False, dataset="photo_crops",
    models={
        "photo_uncond": dict(_DEMO, width=12, conditional=False, n_iters=1400, snapshot_every=700,
                             train=_DEMO_TRAIN),                                     # ResNet32Large (Fig. 24b)
        "photo_cond": dict(_DEMO, width=16, conditional=True, n_iters=1400, snapshot_every=700,
                           train=_DEMO_TRAIN),                                       # ResNet32 (Fig. 24a)
    },
    classifier_epochs=4, classifier_train=None, classifier_width=32,   # the classifier that measures samples
    n_quality=300, eval=_DEMO_EVAL,                         # Table 1: samples per protocol
    inception=False,                                          # Inception IS / FID (needs torch-fidelity + weights)
    fig3_n=36, per_class=8,                                   # Fig. 3, Fig. 5 / 17
    noise_chains=6, noise_frames=(0, 10, 20, 40, 80, 120, 200),   # Fig. 21
    hist_n=500, nn_train=20000,                              # Fig. 2, Fig. 20
    restore_n=300, restore_steps=40, convert_n=5, convert_steps=60,   # Fig. 6, Fig. 7
    # the paper run's cost: a measured rate (training iterations per second of each paper model on the GPU at
    # hand, e.g. from the engine's benchmark; None: not measured on this book's machines, which have no GPU), else a FLOP estimate at an assumed sustained
    # rate: the paper recipe runs in float32, whose convolutions cuDNN runs as TF32 by default, so an H100 SXM's
    # dense TF32 peak (495 TFLOP/s) at 30% utilisation (small 32x32 convolutions rarely sustain more)
    measured_rate=None, flops_per_s=495e12, utilisation=0.3,
)

_SMOKE = dict(dataset="photo_crops", n_iters=6, snapshot_every=3, keep_buffer=64, ensemble=3, ensemble_every=2,
              ensemble_dtype="float16", width=4)
_SMOKE_TRAIN = dict(batch_size=8, n_steps=3, lr=1e-3, checkpoint_every=3, init="replay")

SMOKE = dict(
    models={
        "photo_uncond": dict(_SMOKE, conditional=False, train=_SMOKE_TRAIN),
        "photo_cond": dict(_SMOKE, conditional=True, train=_SMOKE_TRAIN),
    },
    classifier_epochs=1, classifier_train=2000, classifier_width=8, n_quality=40,
    eval=dict(_DEMO_EVAL, rounds=2, steps=2, settle=1, batch=20), fig3_n=8, per_class=2, noise_chains=2,
    noise_frames=(0, 2, 4), hist_n=40, nn_train=200, restore_n=20, restore_steps=2, convert_n=2, convert_steps=2,
)

# A.7 on CIFAR-10 exactly: 60 Langevin steps of size 10 (noise 0.005 and clip 0.01 are TrainConfig's defaults),
# replay buffer 10,000 (5% noise restarts), alpha 1, Adam lr 1e-4 betas (0, 0.999), batch 128 + 128, width 128
# (A.6). The paper trains "on 1 GPU for 2 days" and gives no iteration count: 40,000, as chapter 06 assumes. The
# ensemble: the release's last 10 checkpoints, 300 iterations apart, kept in float32.
_PAPER = dict(dataset="cifar10", width=128, n_iters=40000, snapshot_every=2000, keep_buffer=1000, ensemble=10,
              ensemble_every=300, ensemble_dtype="float32")
_PAPER_TRAIN = dict(batch_size=128, n_steps=60, step_size=10.0, lr=1e-4, buffer_capacity=10000, init="replay",
                    channels_last=True, checkpoint_every=1000)

PAPER = dict(
    threads=None, device="auto", progress=True, dataset="cifar10",
    models={
        "cifar10_uncond": dict(_PAPER, conditional=False, train=_PAPER_TRAIN),   # ResNet32Large, Fig. 24b
        "cifar10_cond": dict(_PAPER, conditional=True, train=_PAPER_TRAIN),      # ResNet32, Fig. 24a
    },
    classifier_epochs=30, classifier_width=64,
    # the release's evaluation: 50,000 samples, a 1,000-image buffer, 200 rounds of 20 steps, the last 10 settling
    n_quality=50000, eval=dict(_DEMO_EVAL, rounds=200, settle=10, batch=1000),
    inception=True, fig3_n=64, per_class=10, noise_chains=8, noise_frames=(0, 20, 50, 100, 200, 300, 500),
    hist_n=10000, nn_train=50000, restore_n=10000, restore_steps=60, convert_n=10, convert_steps=200,
)

# CI runs the paper branch on tiny CIFAR-10 files in their real format (ebmlib.data.fixtures): A.7's recipe with
# the ResNets at width 8, a few iterations, the ensemble 3 snapshots 1 apart
PAPER_SHRUNK = {
    **{f"models.{m}.{k}": v for m in PAPER["models"]
       for k, v in dict(width=8, n_iters=4, snapshot_every=2, keep_buffer=16, ensemble=3, ensemble_every=1).items()},
    **{f"models.{m}.train.{k}": v for m in PAPER["models"]
       for k, v in dict(batch_size=4, n_steps=2, buffer_capacity=64).items()},
    "progress": False, "classifier_epochs": 1, "classifier_width": 4, "n_quality": 40,
    "eval.rounds": 2, "eval.steps": 2, "eval.settle": 1, "eval.batch": 12, "inception": False, "fig3_n": 4,
    "per_class": 1, "noise_chains": 2, "noise_frames": (0, 1, 2), "hist_n": 16, "nn_train": 40, "restore_n": 8,
    "restore_steps": 1, "convert_n": 2, "convert_steps": 1,
}

# the paper trained CIFAR-10 on one GPU: one process by default; $EBMLIB_NPROC=N (or torchrun) trains on N, each
# rank with its own data shard and replay buffer (ebmlib.notebook.launch)
PROCESSES = {"paper": 1}
