"""Chapter 02 (Algorithm 1 on 2D targets): sizes per scale.

CPU at every scale; "paper" means longer runs and several seeds, not the paper's image settings. Spec keys are
those of ``ebmlib.chapters.training_2d.BASE_SPEC``. DEMO is written out whole; SMOKE and PAPER name only the
keys they change (each replaces DEMO's value whole).
"""

# One ablation per row of the chapter's table: variant name -> the spec keys it changes (at equal compute)
ABLATIONS = {
    "Langevin noise (A.8)": {"noise x0.1": {"noise_std": 0.0245}, "noise x1 (T = 1)": {}, "noise x3": {"noise_std": 0.735}},
    "step size (A.8)": {"step 0.003": {"step_size": 0.003}, "step 0.03": {}, "step 0.3": {"step_size": 0.3}},
    "L2 coefficient alpha (3.3, A.4)": {"alpha 0": {"alpha": 0.0}, "alpha 0.01": {}, "alpha 1": {"alpha": 1.0}},
    "Langevin steps K (equal compute)": {"K = 5": {"n_steps": 5}, "K = 20": {}, "K = 60": {"n_steps": 60}},
    "activation (A.8)": {"swish": {}, "relu": {"act": "relu"}, "leaky_relu": {"act": "leaky_relu"}},
    "spectral norm (3.3)": {"no SN": {}, "SN": {"spectral_norm": True}},
}

DEMO = dict(
    threads=1, device="cpu", data_range=(-4.0, 4.0), grid_n=64, seeds=(0, 1, 2),
    targets=("eight_gaussians", "two_rings", "two_moons", "checkerboard"), inits=("replay", "noise", "persistent"),
    base_spec=dict(n_iters=500, n_steps=20, batch_size=128, hidden=64, depth=3, checkpoint_every=50),
    n_samples=2000, sample_steps=200, floor_repeats=5,
    ablation_target="two_moons", ablations=ABLATIONS,
    compose_chains=2000, compose_steps=300, traj_chains=4, traj_steps=150,       # Fig. 14: sums and mixtures
    compose_learned=("two_rings", "two_moons"),
    refine_chains=2000, refine_checkpoints=(0, 1, 3, 10, 20, 50, 100, 300, 1000),  # adaptive computation
    diverge_target="eight_gaussians", diverge_iters=300,                         # the divergence guard at work
    diverge_spec=dict(alpha=0.0, lr=0.1, max_abs_energy=50.0, checkpoint_every=10, max_rollbacks=3),
    # density against samples along one run (no lr anneal), on the four targets and two harder ones
    density_targets=("eight_gaussians", "two_rings", "two_moons", "checkerboard", "spiral", "grid_gaussians"),
    density_checkpoints=(125, 250, 500, 1000, 2000), density_chains=2000, density_steps=500, density_long_steps=5000,
)

SMOKE = dict(
    grid_n=32,
    targets=("two_moons", "two_rings"),
    base_spec=dict(n_iters=20, n_steps=5, batch_size=32, hidden=16, depth=2, checkpoint_every=10),
    n_samples=200, sample_steps=10, floor_repeats=2,
    ablations={"Langevin noise (A.8)": {"noise x0.1": {"noise_std": 0.0245}, "noise x1 (T = 1)": {}},
               "Langevin steps K (equal compute)": {"K = 2": {"n_steps": 2}, "K = 5": {}}},
    compose_chains=200, compose_steps=20, traj_chains=3, traj_steps=40,
    refine_chains=200, refine_checkpoints=(0, 2, 5, 10),
    diverge_target="two_moons", diverge_iters=30,
    diverge_spec=dict(alpha=0.0, lr=0.5, max_abs_energy=5.0, checkpoint_every=5, max_rollbacks=3),
    density_targets=("two_moons", "spiral"), density_checkpoints=(5, 10), density_chains=200, density_steps=10,
    density_long_steps=20,
)

PAPER = dict(
    grid_n=80, seeds=(0, 1, 2),
    base_spec=dict(n_iters=5000, n_steps=20, batch_size=256, hidden=128, depth=3, checkpoint_every=100),
    n_samples=10000, sample_steps=500, floor_repeats=10,
    compose_chains=10000, compose_steps=1000, traj_steps=300,
    refine_chains=10000, refine_checkpoints=(0, 1, 3, 10, 20, 50, 100, 300, 1000, 3000),
    diverge_iters=1000,
    density_checkpoints=(125, 250, 500, 1000, 2000, 5000, 10000), density_chains=10000, density_long_steps=20000,
)

# CI runs the paper branch with these sizes: three seeds and every target and ablation, a few iterations each
PAPER_SHRUNK = {
    "grid_n": 24, "base_spec.n_iters": 4, "base_spec.batch_size": 16, "base_spec.hidden": 8,
    "base_spec.checkpoint_every": 2, "n_samples": 100, "sample_steps": 5, "floor_repeats": 2,
    "compose_chains": 100, "compose_steps": 5, "traj_steps": 10, "refine_chains": 100,
    "refine_checkpoints": (0, 1, 3), "diverge_iters": 20, "density_checkpoints": (2, 4), "density_chains": 100,
    "density_steps": 5, "density_long_steps": 10,
}
