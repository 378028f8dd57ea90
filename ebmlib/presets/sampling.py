"""Chapter 01 (sampling from known 2D energies): sizes per scale.

CPU at every scale. The chapter is a 2D toy with no counterpart among the paper's experiments, so "paper" only
means more chains, longer runs and a finer grid. DEMO is written out whole; SMOKE and PAPER name only the keys
they change (each replaces DEMO's value whole).
"""

DEMO = dict(
    threads=1, device="cpu",
    landscape_grid=120, landscape_samples=1000,              # section 1: plots of the six targets
    grid_n=40, floor_repeats=10,                             # grid KL: cells per axis, exact-sample repeats
    compare_targets=("eight_gaussians", "two_moons"), compare_chains=3000,   # section 2: five samplers
    compare_checkpoints=(0, 3, 10, 30, 100, 300, 1000),
    mmd_points=2000,
    bias_chains=2000, bias_burn_in=100, bias_steps=200,     # section 3: ULA's step-size bias on N(0, 1)
    bias_step_sizes=(0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.4, 1.8),
    mix_separations=(1.5, 2.5, 3.5, 5.0), mix_chains=1000, mix_steps=500,   # section 4: mixing between modes
    traj_separations=(2.5, 5.0), traj_chains=4, traj_steps=500,
    panel_chains=1500, panel_steps=300,                      # section 5: noise x step size of the paper's update
    panel_step_sizes=(0.00125, 0.005, 0.03125),              # T = 1 at sigma = sqrt(2h) for each of them
    panel_noise_stds=(0.005, 0.05, 0.1, 0.25, 0.5),
    widget_chains=1000, widget_max_steps=500,                # section 6: the interactive control
)

SMOKE = dict(
    landscape_grid=50, landscape_samples=300,
    grid_n=30, floor_repeats=2,
    compare_targets=("two_moons",), compare_chains=200, compare_checkpoints=(0, 5, 20),
    mmd_points=200,
    bias_chains=200, bias_burn_in=20, bias_steps=20, bias_step_sizes=(0.2, 1.0),
    mix_separations=(2.0, 5.0), mix_chains=100, mix_steps=20,
    traj_separations=(2.0, 5.0), traj_chains=3, traj_steps=30,
    panel_chains=200, panel_steps=20, panel_step_sizes=(0.005,), panel_noise_stds=(0.005, 0.1),
    widget_chains=200, widget_max_steps=100,
)

PAPER = dict(
    landscape_grid=200, landscape_samples=3000,
    grid_n=60, floor_repeats=20,
    compare_targets=("eight_gaussians", "two_moons", "two_rings"), compare_chains=10000,
    compare_checkpoints=(0, 3, 10, 30, 100, 300, 1000, 3000),
    mmd_points=4000,
    bias_chains=10000, bias_burn_in=200, bias_steps=1000,
    bias_step_sizes=(0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.4, 1.8),
    mix_separations=(1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0), mix_chains=3000, mix_steps=2000,
    traj_separations=(2.5, 5.0), traj_chains=4, traj_steps=3000,
    panel_chains=5000, panel_steps=1000, panel_step_sizes=(0.00125, 0.005, 0.01125, 0.03125),
    panel_noise_stds=(0.005, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0),
    widget_chains=2000, widget_max_steps=2000,
)

# CI runs the paper branch with these sizes: every target and setting of PAPER, far fewer chains and steps
PAPER_SHRUNK = {
    "landscape_grid": 40, "landscape_samples": 200, "grid_n": 20, "floor_repeats": 2,
    "compare_chains": 100, "compare_checkpoints": (0, 3, 10), "mmd_points": 100,
    "bias_chains": 100, "bias_burn_in": 5, "bias_steps": 10,
    "mix_chains": 50, "mix_steps": 10, "traj_steps": 20,
    "panel_chains": 100, "panel_steps": 10, "widget_chains": 100, "widget_max_steps": 50,
}
