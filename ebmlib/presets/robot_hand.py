"""Chapter 07 (EBM vs FC dynamics of the Shadow hand, section 5, Fig. 12 / 13, A.7): sizes per scale.

Data from ``ebmlib.data.hand`` (scripted policy; ~3 trajectories/s per worker on a busy CPU, ~15 on an idle
one). The test set is halved: roll-outs start from one half and are scored against the other, and the two
halves' distance is the floor of the comparison, so its size sets what the chapter can resolve. The demo
therefore splits its 8,000 trajectories 50/50 (4,000 test, halves of 2,000) instead of the paper's 90/10, which
at this data size would leave halves of 400. Each model is trained ``train_seeds`` times (seeds 1, 2, ...): one
training run of an EBM can land far from another, a spread the floor of the evaluation does not cover.
Langevin acts on normalised displacements (``ebmlib.chapters.robot_hand``); the demo's gradient clip is 5x
A.7's so that 10 steps can travel the unit spread of a step. DEMO is written out whole; SMOKE and PAPER name
only the keys they change (each replaces DEMO's value whole).
"""

DEMO = dict(
    threads=1, device="cpu",
    n_traj=8000, length=100, workers=2, data_seed=0, test_fraction=0.5, horizon=100,  # trajectories
    ebm_iters=2500, fc_iters=3000, batch_size=128, ebm_lr=1e-3, fc_lr=1e-3,           # training
    hidden=128,                                                                        # 3 x 128 (5.1)
    train_seeds=3,                              # training runs per model: their spread enters the verdicts
    sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.05, init_std=1.0),
    frame_times=(0, 20, 40, 60, 80, 100), frame_size=(160, 120),                       # Fig. 13
)

SMOKE = dict(
    n_traj=16, length=12, workers=1, horizon=12, ebm_iters=20, fc_iters=40, batch_size=64, train_seeds=2,
    frame_times=(0, 4, 8, 12), frame_size=(96, 72),
)

# section 5: 200,000 trajectories of 100 steps, 90/10 split (20,000 test: halves of 10,000); A.7: batch 128,
# Adam(0, 0.999) at 1e-4, 10 Langevin steps of size 10, noise 0.005, clip 0.01 (no iteration count given)
PAPER = dict(
    threads=None, device="auto",
    n_traj=200_000, workers=16, test_fraction=0.1, ebm_iters=100_000, fc_iters=100_000, ebm_lr=1e-4,
    fc_lr=1e-4, sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.01, init_std=1.0),
    frame_size=(320, 240),
)

# CI runs the paper branch with these sizes (MuJoCo simulates the trajectories; A.7's sampler, a few iterations)
PAPER_SHRUNK = {
    "n_traj": 20, "length": 12, "workers": 1, "test_fraction": 0.4, "horizon": 12, "ebm_iters": 4,
    "fc_iters": 4, "batch_size": 16, "train_seeds": 2, "frame_times": (0, 6, 12), "frame_size": (64, 48),
}

# the paper branch trains on one process per visible GPU (torchrun; ebmlib.notebook.launch), as the paper's larger
# runs used several GPUs (A.7's reported compute); $EBMLIB_NPROC overrides it
PROCESSES = {"paper": "gpus"}
