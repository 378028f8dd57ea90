"""Chapter 03 (deep EBMs on continuous MNIST): sizes per scale.

``models`` maps a recipe name to the fields of ``ebmlib.core.image_ebm.ImageEBMRecipe``; ``train`` holds the
``TrainConfig`` fields of Algorithm 1. A shipped checkpoint (``ebmlib/checkpoints/<name>.pt``) is used only when
its stored recipe equals one of these exactly. Equal compute: the four models of a scale take the same
iterations, batch and Langevin steps; only the data set, the conditioning and the chain start differ. DEMO is
written out whole; SMOKE and PAPER name only the keys they change (each replaces DEMO's value whole).
"""

_DEMO = dict(width=16, n_iters=1200, snapshot_every=100, keep_buffer=1000)
_DEMO_TRAIN = dict(batch_size=64, n_steps=20, lr=1e-3, channels_last=True, checkpoint_every=100)

# Section 9: the conditional replay recipe with twice the Langevin steps (K = 40) trained 2.5x as long, keeping ten
# weight snapshots over training (the snapshot to sample is chosen by a second classifier), at three training seeds;
# the control ("mnist_cond_long"): the same run at section 2's K = 20
_BUDGET = dict(_DEMO, dataset="mnist", conditional=True, n_iters=3000, snapshot_every=300, ensemble=10,
               ensemble_every=300, ensemble_dtype="float32")


def _budget(base: dict, train: dict, control_steps: int) -> dict:
    """One recipe at training seeds 0, 1 and 2, and the control: seed 0 with ``control_steps`` Langevin steps."""
    return {"mnist_cond_k40": dict(base, train=train), "mnist_cond_k40_s1": dict(base, train=dict(train, seed=1)),
            "mnist_cond_k40_s2": dict(base, train=dict(train, seed=2)),
            "mnist_cond_long": dict(base, train=dict(train, n_steps=control_steps))}


BUDGET_DEMO = _budget(_BUDGET, dict(_DEMO_TRAIN, init="replay", n_steps=40), control_steps=20)

DEMO = dict(
    threads=1, device="cpu",
    models={
        "mnist_uncond_replay": dict(_DEMO, dataset="mnist", conditional=False, train=dict(_DEMO_TRAIN, init="replay")),
        "mnist_cond_replay": dict(_DEMO, dataset="mnist", conditional=True, train=dict(_DEMO_TRAIN, init="replay")),
        "mnist_cond_noise": dict(_DEMO, dataset="mnist", conditional=True, train=dict(_DEMO_TRAIN, init="noise")),
        "fashion_uncond_replay": dict(_DEMO, dataset="fashion", conditional=False,
                                      train=dict(_DEMO_TRAIN, init="replay")),
    },
    classifier_epochs=2, classifier_train=60000,           # the classifier that measures samples
    n_eval=1000, fid_samples=1000, eval_steps=60,           # FID in classifier space, conditional accuracy
    noise_chains=8, noise_steps=200, noise_frames=(0, 5, 10, 20, 40, 80, 120, 200),   # Fig. 21
    per_class=8, nn_train=60000, hist_n=1000,               # Fig. 17, Fig. 20, Fig. 2
    restore_n=500, restore_steps=40, convert_n=10, completions=6,   # Fig. 6, 7, 8
    budget_models=BUDGET_DEMO, budget_control="mnist_cond_long", budget_n=1000, budget_track_n=100,   # section 9
    # Fig. 2, 6, 7 / 19 and 20 over training seeds (mnist.seed_run; 0: the models above; seeds 1 and 2 of the two
    # replay models are shipped in checkpoints/seed_<s>/, about 7 CPU-minutes each to retrain)
    seeds=(0, 1, 2),
)

_SMOKE = dict(width=4, n_iters=6, snapshot_every=3, keep_buffer=64)
_SMOKE_TRAIN = dict(batch_size=16, n_steps=5, lr=1e-3, checkpoint_every=3)

SMOKE = dict(
    models={
        "mnist_uncond_replay": dict(_SMOKE, dataset="mnist", conditional=False, train=dict(_SMOKE_TRAIN, init="replay")),
        "mnist_cond_replay": dict(_SMOKE, dataset="mnist", conditional=True, train=dict(_SMOKE_TRAIN, init="replay")),
        "mnist_cond_noise": dict(_SMOKE, dataset="mnist", conditional=True, train=dict(_SMOKE_TRAIN, init="noise")),
        "fashion_uncond_replay": dict(_SMOKE, dataset="fashion", conditional=False,
                                      train=dict(_SMOKE_TRAIN, init="replay")),
    },
    classifier_epochs=1, classifier_train=1000, n_eval=64, fid_samples=200, eval_steps=10,
    noise_chains=4, noise_steps=20, noise_frames=(0, 5, 10, 20), per_class=2, nn_train=2000,
    hist_n=200, restore_n=32, restore_steps=10, convert_n=4, completions=3,
    budget_models=_budget(dict(_SMOKE, dataset="mnist", conditional=True, ensemble=2, ensemble_every=3),
                          dict(_SMOKE_TRAIN, init="replay"), control_steps=3),
    budget_n=40, budget_track_n=20, seeds=(0, 1),
)

# A.7 for MNIST: 60 Langevin steps, Adam lr 1e-4, batch 128; the paper gives no iteration count for MNIST
_PAPER = dict(width=64, n_iters=30000, snapshot_every=1000, keep_buffer=10000)
_PAPER_TRAIN = dict(batch_size=128, n_steps=60, lr=1e-4, channels_last=True, checkpoint_every=500)

PAPER = dict(
    threads=None, device="auto",
    models={
        "mnist_uncond_replay": dict(_PAPER, dataset="mnist", conditional=False, train=dict(_PAPER_TRAIN, init="replay")),
        "mnist_cond_replay": dict(_PAPER, dataset="mnist", conditional=True, train=dict(_PAPER_TRAIN, init="replay")),
        "mnist_cond_noise": dict(_PAPER, dataset="mnist", conditional=True, train=dict(_PAPER_TRAIN, init="noise")),
        "fashion_uncond_replay": dict(_PAPER, dataset="fashion", conditional=False,
                                      train=dict(_PAPER_TRAIN, init="replay")),
    },
    classifier_epochs=5, n_eval=10000, fid_samples=10000,
    noise_chains=16, noise_steps=500, noise_frames=(0, 10, 20, 50, 100, 200, 300, 500), per_class=16,
    hist_n=10000, restore_n=10000, restore_steps=60, completions=8,
    # section 9 at the paper's size: A.7's recipe with ten weight snapshots
    budget_models=_budget(dict(_PAPER, dataset="mnist", conditional=True, ensemble=10, ensemble_every=1000),
                          dict(_PAPER_TRAIN, init="replay"), control_steps=20),
    budget_n=10000, budget_track_n=1000,
    seeds=(0,),   # 30,000 GPU iterations per model: one seed unless asked for more (overrides {"seeds": [0, 1, 2]})
)

# CI runs the paper branch with these sizes (the width-64 network and A.7's settings, a few iterations)
PAPER_SHRUNK = {
    **{f"models.{m}.{k}": v for m in PAPER["models"]
       for k, v in dict(n_iters=2, snapshot_every=1, keep_buffer=16).items()},
    **{f"models.{m}.train.{k}": v for m in PAPER["models"] for k, v in dict(batch_size=8, n_steps=2).items()},
    "classifier_train": 500, "n_eval": 32, "fid_samples": 64, "eval_steps": 2, "noise_chains": 2, "noise_steps": 4,
    "noise_frames": (0, 2, 4), "per_class": 1, "nn_train": 500, "hist_n": 32, "restore_n": 16, "restore_steps": 2,
    "convert_n": 2, "completions": 2,
    **{f"budget_models.{m}.{k}": v for m in PAPER["budget_models"]
       for k, v in dict(n_iters=2, snapshot_every=1, keep_buffer=16, ensemble=2, ensemble_every=1).items()},
    **{f"budget_models.{m}.train.{k}": v for m in PAPER["budget_models"]
       for k, v in dict(batch_size=8, n_steps=2).items()},
    "budget_n": 20, "budget_track_n": 10, "seeds": (0, 1),
}

# the paper branch trains on one process per visible GPU (torchrun; ebmlib.notebook.launch), as the paper's larger
# runs used several GPUs (A.7's reported compute); $EBMLIB_NPROC overrides it
PROCESSES = {"paper": "gpus"}
