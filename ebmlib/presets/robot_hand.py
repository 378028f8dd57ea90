"""Chapter 06 (EBM vs FC dynamics of the Shadow hand, section 5, Fig. 12 / 13, A.7): sizes per scale.

Data from ``ebmlib.data.hand`` (scripted policy; ~3 trajectories/s per worker). Langevin acts on normalised
displacements (``ebmlib.chapters.robot_hand``); the demo's gradient clip is 5x A.7's so that 10 steps can travel
the unit spread of a step. DEMO is written out whole; SMOKE and PAPER name only the keys they change (each
replaces DEMO's value whole).
"""

DEMO = dict(
    threads=1, device="cpu",
    n_traj=1000, length=100, workers=2, data_seed=0, test_fraction=0.1, horizon=100,   # trajectories
    ebm_iters=2500, fc_iters=3000, batch_size=128, ebm_lr=1e-3, fc_lr=1e-3,           # training
    sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.05, init_std=1.0),
    frame_times=(0, 20, 40, 60, 80, 100), frame_size=(160, 120),                       # Fig. 13
)

SMOKE = dict(
    n_traj=12, length=12, workers=1, test_fraction=0.34, horizon=12, ebm_iters=20, fc_iters=40, batch_size=64,
    frame_times=(0, 4, 8, 12), frame_size=(96, 72),
)

# section 5: 200,000 trajectories of 100 steps, 90/10 split; A.7: batch 128, Adam(0, 0.999) at 1e-4, 10 Langevin
# steps of size 10, noise 0.005, clip 0.01 (the paper gives no iteration count)
PAPER = dict(
    threads=None, device="auto",
    n_traj=200_000, workers=16, ebm_iters=100_000, fc_iters=100_000, ebm_lr=1e-4, fc_lr=1e-4,
    sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.01, init_std=1.0),
    frame_size=(320, 240),
)

# CI runs the paper branch with these sizes (MuJoCo simulates the trajectories; A.7's sampler, a few iterations)
PAPER_SHRUNK = {
    "n_traj": 12, "length": 12, "workers": 1, "test_fraction": 0.34, "horizon": 12, "ebm_iters": 4,
    "fc_iters": 4, "batch_size": 16, "frame_times": (0, 6, 12), "frame_size": (64, 48),
}
