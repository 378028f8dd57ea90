"""Chapter 12 (ImageNet 32x32 and 128x128, section 4.1; Fig. 4, 8, 18; Table 1's ImageNet rows): sizes per scale.

``models`` maps a recipe name to the fields of ``ebmlib.chapters.imagenet.ImageNetEBMRecipe``: an image-EBM
recipe with the release's ImageNet networks (``image_size`` 32: ResNet32Wider, Fig. 24c; 128: ResNet128 with
Swish, Fig. 24d), ``n_classes`` labels and the historical ensemble's snapshots (section 4.1). ``dataset``:
``"imagenet32"`` / ``"imagenet128"`` at paper scale; at smoke and demo scale the offline **photo-crops stand-in**
(``ebmlib.data.standin``: crops of ten bundled photographs, the photograph being the class), at 32x32
(``"photo_crops"``) and 128x128 (``"photo_crops_128"``), **not ImageNet**, because ImageNet cannot be downloaded on
the book's machines. A shipped checkpoint (``ebmlib/checkpoints/<name>.pt``) is used only when its stored recipe
equals one of these exactly. DEMO is written out whole; SMOKE and PAPER name only the keys they change.
"""

# Demo: both networks at width 8 (ResNet32Wider: F = 16; ResNet128: 8 -> 128 channels), 10 classes (the paper's
# 1000), the release's ImageNet samplers (32x32: step 10; 128x128: step 100, Swish) with fewer Langevin steps
# (K = 30 and 20; the release 60 and 50), the release's per-GPU batches (32 and 16), lr 1e-3 (the CPU demos' rate;
# the release 1e-4 over far more iterations), the release's centred dequantisation of ImageNet32 (+U(-1/512,
# 1/512)) for both, and 10 snapshots for the ensemble. Iterations: sized to about 35 minutes of one shared CPU
# thread each (measured before training: ~0.03 s per Langevin step of a batch at 32x32, ~0.12 s at 128x128).
_DEMO32 = dict(dataset="photo_crops", image_size=32, width=8, conditional=True, n_classes=10, act="leaky_relu",
               dequant="centred", n_iters=1400, snapshot_every=700, keep_buffer=500, ensemble=10, ensemble_every=50,
               ensemble_dtype="float16",
               train=dict(batch_size=32, n_steps=30, step_size=10.0, lr=1e-3, channels_last=True,
                          checkpoint_every=100, init="replay"))
_DEMO128 = dict(dataset="photo_crops_128", image_size=128, width=8, conditional=True, n_classes=10, act="swish",
                dequant="centred", n_iters=700, snapshot_every=350, keep_buffer=200, ensemble=10, ensemble_every=30,
                ensemble_dtype="float16",
                train=dict(batch_size=16, n_steps=20, step_size=100.0, lr=1e-3, channels_last=True,
                           checkpoint_every=50, init="replay"))

# the release's evaluation sampler (chapter 04's): rounds of `steps` Langevin steps, a fraction of the chains (and
# labels) re-initialised after each round but the last `settle`; 128x128 chains take the training step size 100
_DEMO_EVAL = dict(rounds=10, steps=20, reinit=0.01, relabel=0.1, settle=3, step_size=10.0, noise_std=0.005,
                  grad_clip=0.05, batch=250)

DEMO = dict(
    threads=1, device="cpu", progress=False,
    models={"photo32_cond": _DEMO32, "photo128_cond": _DEMO128},
    classifier_data="photo_crops",          # the classifier that measures samples (128x128 ones area-averaged to 32)
    classifier_epochs=4, classifier_train=None, classifier_width=32,
    n_quality={"photo32_cond": 300, "photo128_cond": 100},      # Table 1: samples per protocol and model
    eval={"photo32_cond": _DEMO_EVAL, "photo128_cond": dict(_DEMO_EVAL, rounds=6, step_size=100.0, batch=50)},
    inception=False,                        # Inception IS / FID (needs torch-fidelity + weights)
    show_classes=10, per_class=8,           # Fig. 4 / 18: rows of classes
    complete_n=6, complete_k=4, complete_steps=300,  # Fig. 8: images, completions per image, A.7 Langevin steps
    # the paper runs' cost: a measured rate (iterations per second of one GPU, from the engine's benchmark; None:
    # not measured, the book's machines have no GPU), else a FLOP estimate at an assumed sustained rate (an H100
    # SXM's dense TF32 peak, 495 TFLOP/s, at 30% utilisation: assumptions, labelled as such)
    measured_rate=None, flops_per_s=495e12, utilisation=0.3, paper_gpus=32,
)

_SMOKE_TRAIN = dict(batch_size=4, n_steps=2, lr=1e-3, checkpoint_every=3, init="replay")
SMOKE = dict(
    models={
        "photo32_cond": dict(_DEMO32, width=2, n_iters=6, snapshot_every=3, keep_buffer=16, ensemble=3,
                             ensemble_every=2, train=dict(_SMOKE_TRAIN, step_size=10.0)),
        "photo128_cond": dict(_DEMO128, width=2, n_iters=4, snapshot_every=2, keep_buffer=16, ensemble=2,
                              ensemble_every=2, train=dict(_SMOKE_TRAIN, step_size=100.0)),
    },
    classifier_epochs=1, classifier_train=1000, classifier_width=4,
    n_quality={"photo32_cond": 20, "photo128_cond": 12},
    eval={"photo32_cond": dict(_DEMO_EVAL, rounds=2, steps=2, settle=1, batch=20),
          "photo128_cond": dict(_DEMO_EVAL, rounds=2, steps=1, settle=1, step_size=100.0, batch=12)},
    show_classes=3, per_class=2, complete_n=2, complete_k=2, complete_steps=2,
)

# The release's recipes (A.6, A.7; the authors' code release): ImageNet32, ResNet32Wider (F = 256, 1000 classes,
# ~90M parameters), K = 60, step 10, batch 32 per GPU; ImageNet128, ResNet128 (F = 64, Swish, ~21M), K = 50,
# step 100, batch 16 per GPU; both with a replay buffer of 10,000 per GPU, lr 1e-4, 32 GPUs. The paper gives wall
# time (5 and 7 days on 32 GPUs), not iterations: 100,000 is this book's assumption, and the chapter prints the
# cost it implies beside the paper's days. The dequantisation of the release's ImageNet32 loader is used for both.
_PAPER_TRAIN = dict(batch_size=32, n_steps=60, step_size=10.0, lr=1e-4, buffer_capacity=10000, init="replay",
                    channels_last=True, checkpoint_every=1000)
PAPER = dict(
    threads=None, device="auto", progress=True,
    models={
        "imagenet32_cond": dict(_DEMO32, dataset="imagenet32", width=128, n_classes=1000, n_iters=100000,
                                snapshot_every=5000, keep_buffer=1000, ensemble=10, ensemble_every=300,
                                ensemble_dtype="float32", train=_PAPER_TRAIN),
        "imagenet128_cond": dict(_DEMO128, dataset="imagenet128", width=64, n_classes=1000, n_iters=100000,
                                 snapshot_every=5000, keep_buffer=1000, ensemble=10, ensemble_every=300,
                                 ensemble_dtype="float32",
                                 train=dict(_PAPER_TRAIN, batch_size=16, n_steps=50, step_size=100.0)),
    },
    classifier_data="imagenet32", classifier_epochs=10, classifier_train=None, classifier_width=64,
    n_quality={"imagenet32_cond": 50000, "imagenet128_cond": 50000},
    eval={"imagenet32_cond": dict(_DEMO_EVAL, rounds=200, settle=10, batch=1000),
          "imagenet128_cond": dict(_DEMO_EVAL, rounds=200, settle=10, step_size=100.0, batch=250)},
    inception=True, show_classes=10, per_class=10, complete_n=10, complete_k=6, complete_steps=200,
)

PAPER_SHRUNK = {
    **{f"models.{m}.{k}": v for m in PAPER["models"]
       for k, v in dict(width=2, n_iters=4, snapshot_every=2, keep_buffer=16, ensemble=2, ensemble_every=1).items()},
    **{f"models.{m}.train.{k}": v for m in PAPER["models"]
       for k, v in dict(batch_size=4, n_steps=2, buffer_capacity=16).items()},
    "progress": False, "classifier_epochs": 1, "classifier_width": 2,
    "n_quality": {"imagenet32_cond": 12, "imagenet128_cond": 12},
    "eval.imagenet32_cond.rounds": 2, "eval.imagenet32_cond.steps": 1, "eval.imagenet32_cond.settle": 1,
    "eval.imagenet32_cond.batch": 12, "eval.imagenet128_cond.rounds": 2, "eval.imagenet128_cond.steps": 1,
    "eval.imagenet128_cond.settle": 1, "eval.imagenet128_cond.batch": 12,
    "inception": False, "show_classes": 2, "per_class": 1, "complete_n": 2, "complete_k": 2, "complete_steps": 1,
}

# the paper trained both on 32 GPUs: one process per visible GPU ($EBMLIB_NPROC=N, or torchrun, overrides), each
# rank with its own data shard (its own random draws) and its own replay buffer (ebmlib.notebook.launch)
PROCESSES = {"paper": "gpus"}
