"""Chapter 05 (AIS / RAISE likelihood bounds on continuous MNIST, A.3, Fig. 22 and 23): sizes per scale.

``models`` are ``ebmlib.core.image_ebm.ImageEBMRecipe`` fields. The replay model is the same recipe as chapter
03's ``mnist_uncond_replay`` (so the same shipped checkpoint); the PCD model differs from it only in keeping
persistent chains. The Fig. 23 models vary one setting each: the L2 coefficient alpha (step size 10) and the
Langevin step size (alpha 1); on CPU they are smaller and shorter than the replay/PCD pair (the page says so).
DEMO is written out whole; SMOKE and PAPER name only the keys they change (each replaces DEMO's value whole).
"""

_DEMO = dict(dataset="mnist", conditional=False, width=16, n_iters=1200, snapshot_every=100, keep_buffer=1000)
_DEMO_TRAIN = dict(batch_size=64, n_steps=20, lr=1e-3, channels_last=True, checkpoint_every=100)
_DEMO_SENS = dict(_DEMO, width=8, n_iters=500, keep_buffer=200)

DEMO = dict(
    threads=1, device="cpu",
    models={
        "mnist_uncond_replay": dict(_DEMO, train=dict(_DEMO_TRAIN, init="replay")),
        "mnist_uncond_pcd": dict(_DEMO, train=dict(_DEMO_TRAIN, init="persistent")),
        "sens_l2_0.01": dict(_DEMO_SENS, train=dict(_DEMO_TRAIN, init="replay", alpha=0.01, step_size=10.0)),
        "sens_l2_0.1": dict(_DEMO_SENS, train=dict(_DEMO_TRAIN, init="replay", alpha=0.1, step_size=10.0)),
        "sens_l2_1": dict(_DEMO_SENS, train=dict(_DEMO_TRAIN, init="replay", alpha=1.0, step_size=10.0)),
        "sens_step_100": dict(_DEMO_SENS, train=dict(_DEMO_TRAIN, init="replay", alpha=1.0, step_size=100.0)),
        "sens_step_1000": dict(_DEMO_SENS, train=dict(_DEMO_TRAIN, init="replay", alpha=1.0, step_size=1000.0)),
    },
    exact_dims=(2, 50, 784), exact_temps=(10, 30, 100, 300, 1000, 3000), exact_chains=256,   # exact log Z problems
    # AIS cost: one HMC transition (5 leapfrog steps) per temperature, ~6 energy+gradient evaluations per chain
    # and temperature, ~0.6 ms each for the width-16 CNN at one thread (0.35 ms at width 8)
    t_grid=(3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3), t_chains=8, t_temps=100,   # choosing T
    bound_temps=(100, 500), bound_chains=16,                 # Fig. 22: replay vs PCD
    probe_temps=3000, probe_chains=64,   # Fig. 22's models at the K that made the 784-D box useful
    # one lever at a time on the replay model at its T (ebmlib.chapters.ais_levers): K, MH steps per distribution,
    # leapfrog steps, a warmer T, a kernel base on the model's own buffer; 16 chains, ~16 CPU-minutes in all
    lever_model="mnist_uncond_replay", lever_chains=16,
    levers=(dict(n_temps=300), dict(n_temps=1000), dict(n_temps=3000), dict(n_temps=300, n_steps=4),
            dict(n_temps=300, n_leapfrog=20), dict(n_temps=300, n_leapfrog=50), dict(n_temps=300, n_leapfrog=150),
            dict(n_temps=300, t_factor=10.0), dict(n_temps=300, kernel_std=0.1)),
    sens_temps=200, sens_chains=8,                           # Fig. 23
    sens_seeds=(0, 1, 2),   # Fig. 23 over training seeds (0: the models above; the others' ship in seed_<s>/)
    n_test=16, histogram_n=1000, n_base_fit=20000, ais_settings=dict(pilot_chains=8, pilot_steps=1),
)

_SMOKE = dict(dataset="mnist", conditional=False, width=4, n_iters=6, snapshot_every=3, keep_buffer=64)
_SMOKE_TRAIN = dict(batch_size=16, n_steps=5, lr=1e-3, checkpoint_every=3)
_SMOKE_SENS = dict(_SMOKE, keep_buffer=16)

SMOKE = dict(
    models={
        "mnist_uncond_replay": dict(_SMOKE, train=dict(_SMOKE_TRAIN, init="replay")),
        "mnist_uncond_pcd": dict(_SMOKE, train=dict(_SMOKE_TRAIN, init="persistent")),
        "sens_l2_0.01": dict(_SMOKE_SENS, train=dict(_SMOKE_TRAIN, init="replay", alpha=0.01, step_size=10.0)),
        "sens_l2_0.1": dict(_SMOKE_SENS, train=dict(_SMOKE_TRAIN, init="replay", alpha=0.1, step_size=10.0)),
        "sens_l2_1": dict(_SMOKE_SENS, train=dict(_SMOKE_TRAIN, init="replay", alpha=1.0, step_size=10.0)),
        "sens_step_100": dict(_SMOKE_SENS, train=dict(_SMOKE_TRAIN, init="replay", alpha=1.0, step_size=100.0)),
        "sens_step_1000": dict(_SMOKE_SENS, train=dict(_SMOKE_TRAIN, init="replay", alpha=1.0, step_size=1000.0)),
    },
    exact_dims=(2, 50), exact_temps=(10, 100), exact_chains=32,
    t_grid=(1e-3, 1e-2), t_chains=4, t_temps=5, bound_temps=(5, 10), bound_chains=4, sens_temps=5, sens_chains=4,
    sens_seeds=(0, 1),
    probe_temps=5, probe_chains=4,
    lever_chains=4, levers=(dict(n_temps=3), dict(n_temps=6), dict(n_temps=3, n_steps=2), dict(n_temps=3, n_leapfrog=8),
                            dict(n_temps=3, t_factor=10.0), dict(n_temps=3, kernel_std=0.1)),
    n_test=4, histogram_n=16, n_base_fit=500, ais_settings=dict(pilot_chains=4, pilot_steps=1),
)

# A.7 for MNIST (60 steps, lr 1e-4, batch 128); the paper gives no iteration count for these models
_PAPER = dict(dataset="mnist", conditional=False, width=64, n_iters=30000, snapshot_every=1000, keep_buffer=10000)
_PAPER_TRAIN = dict(batch_size=128, n_steps=60, lr=1e-4, channels_last=True, checkpoint_every=500)

PAPER = dict(
    threads=None, device="auto",
    models={
        "mnist_uncond_replay": dict(_PAPER, train=dict(_PAPER_TRAIN, init="replay")),
        "mnist_uncond_pcd": dict(_PAPER, train=dict(_PAPER_TRAIN, init="persistent")),
        "sens_l2_0.01": dict(_PAPER, train=dict(_PAPER_TRAIN, init="replay", alpha=0.01, step_size=10.0)),
        "sens_l2_0.1": dict(_PAPER, train=dict(_PAPER_TRAIN, init="replay", alpha=0.1, step_size=10.0)),
        "sens_l2_1": dict(_PAPER, train=dict(_PAPER_TRAIN, init="replay", alpha=1.0, step_size=10.0)),
        "sens_step_100": dict(_PAPER, train=dict(_PAPER_TRAIN, init="replay", alpha=1.0, step_size=100.0)),
        "sens_step_1000": dict(_PAPER, train=dict(_PAPER_TRAIN, init="replay", alpha=1.0, step_size=1000.0)),
    },
    exact_temps=(10, 30, 100, 300, 1000, 3000), exact_chains=1000,
    t_grid=(3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2), t_chains=100, t_temps=1000,
    # A.3: AIS and RAISE with 10,000 chains (the paper does not give its number of temperatures)
    bound_temps=(1000, 10000), bound_chains=10000, sens_temps=10000, sens_chains=10000,
    probe_temps=3000, probe_chains=1000,
    lever_chains=100, levers=(dict(n_temps=1000), dict(n_temps=10000), dict(n_temps=1000, n_steps=4),
                              dict(n_temps=1000, n_leapfrog=50), dict(n_temps=1000, n_leapfrog=200),
                              dict(n_temps=1000, t_factor=10.0), dict(n_temps=1000, kernel_std=0.1)),
    n_test=10000, histogram_n=10000, n_base_fit=60000,
    ais_settings=dict(pilot_chains=64, pilot_steps=3, n_leapfrog=10),   # A.3: HMC with 10 leapfrog steps
)

# CI runs the paper branch with these sizes (the width-64 network, every model and temperature, tiny counts)
PAPER_SHRUNK = {
    **{f"models.{m}.{k}": v for m in PAPER["models"]
       for k, v in dict(n_iters=2, snapshot_every=1, keep_buffer=16).items()},
    **{f"models.{m}.train.{k}": v for m in PAPER["models"] for k, v in dict(batch_size=8, n_steps=2).items()},
    "exact_dims": (2, 50), "exact_temps": (10, 30), "exact_chains": 16, "t_chains": 2, "t_temps": 3,
    "bound_temps": (3, 5), "bound_chains": 2, "probe_temps": 3, "probe_chains": 2,
    "lever_chains": 2, "levers": (dict(n_temps=2), dict(n_temps=4), dict(n_temps=2, n_leapfrog=3),
                                  dict(n_temps=2, kernel_std=0.1)),
    "sens_temps": 3, "sens_chains": 2, "sens_seeds": (0, 1),
    "n_test": 2, "histogram_n": 16,
    "n_base_fit": 500, "ais_settings.pilot_chains": 2, "ais_settings.pilot_steps": 1,
}

# the paper branch trains on one process per visible GPU (torchrun; ebmlib.notebook.launch), as the paper's larger
# runs used several GPUs (A.7's reported compute); $EBMLIB_NPROC overrides it
PROCESSES = {"paper": "gpus"}
