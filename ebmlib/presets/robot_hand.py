"""Chapter 07 (EBM vs FC dynamics of the Shadow hand, section 5, Fig. 12 / 13, A.7): sizes per scale.

Data from ``ebmlib.data.hand`` (scripted policy, every 4th action random; ~0.1 s per trajectory on one idle core,
~0.2 s on a busy one). The demo simulates 20,000 trajectories (about an hour of this 2-core machine) and splits
them 90/10 as section 5 does: 2,000 test trajectories, halved into 1,000 start states and 1,000 true trajectories
(the two halves' distance is the floor of the comparison). A tenth of the training trajectories is held out as the
validation split, on which ``tune`` chooses each model's iterations, step size or learning rate from the grid
below (every combination, one training run each with a seed no test run uses); the test split scores only the
chosen settings. Each model is then trained ``train_seeds`` times (seeds 1, 2, ...): one training run of an EBM
can land far from another, a spread the floor of the evaluation does not cover. Langevin acts on normalised
displacements (``ebmlib.chapters.robot_hand``); the demo's gradient clip is 5x A.7's so that 10 steps can travel
the unit spread of a step. DEMO is written out whole; SMOKE and PAPER name only the keys they change (each
replaces DEMO's value whole).
"""

DEMO = dict(
    threads=1, device="cpu",
    n_traj=20000, length=100, workers=2, data_seed=0, test_fraction=0.1, horizon=100,  # trajectories
    val_fraction=0.1,                           # of the training trajectories: where the settings are chosen
    ebm_iters=2500, fc_iters=3000, batch_size=128, ebm_lr=1e-3, fc_lr=1e-3,           # training
    hidden=128,                                                                        # 3 x 128 (5.1)
    train_seeds=3,                              # training runs per model: their spread enters the verdicts
    tune=dict(EBM=dict(n_iters=(2500, 5000), step_size=(5.0, 10.0, 20.0)),           # chosen on validation
              FC=dict(n_iters=(3000, 12000), lr=(3e-4, 1e-3, 3e-3))),
    sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.05, init_std=1.0),
    frame_times=(0, 20, 40, 60, 80, 100), frame_size=(160, 120),                       # Fig. 13
)

SMOKE = dict(
    n_traj=24, length=12, workers=1, test_fraction=0.5, val_fraction=0.5, horizon=12, ebm_iters=20, fc_iters=40,
    batch_size=64, train_seeds=2, tune=dict(EBM=dict(step_size=(5.0, 10.0)), FC=dict(lr=(1e-3, 3e-3))),
    frame_times=(0, 4, 8, 12), frame_size=(96, 72),
)

# section 5: 200,000 trajectories of 100 steps, 90/10 split (20,000 test: halves of 10,000); A.7: batch 128,
# Adam(0, 0.999) at 1e-4, 10 Langevin steps of size 10, noise 0.005, clip 0.01 (no iteration count given). A.7's
# settings are taken as stated, so the paper branch has nothing to tune (its validation split is still held out)
PAPER = dict(
    threads=None, device="auto",
    n_traj=200_000, workers=16, test_fraction=0.1, ebm_iters=100_000, fc_iters=100_000, ebm_lr=1e-4,
    fc_lr=1e-4, sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.01, init_std=1.0),
    frame_size=(320, 240), tune={},
)

# CI runs the paper branch with these sizes (MuJoCo simulates the trajectories; A.7's sampler, a few iterations)
PAPER_SHRUNK = {
    "n_traj": 20, "length": 12, "workers": 1, "test_fraction": 0.4, "val_fraction": 0.4, "horizon": 12,
    "ebm_iters": 4, "tune": {"EBM": {"step_size": (5.0, 10.0)}},
    "fc_iters": 4, "batch_size": 16, "train_seeds": 2, "frame_times": (0, 6, 12), "frame_size": (64, 48),
}

# the paper branch trains on one process per visible GPU (torchrun; ebmlib.notebook.launch), as the paper's larger
# runs used several GPUs (A.7's reported compute); $EBMLIB_NPROC overrides it
PROCESSES = {"paper": "gpus"}
