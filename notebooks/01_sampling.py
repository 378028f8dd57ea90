# %% [markdown]
# # Sampling from known energies
#
# Everything an energy-based model does at generation time runs through a sampler. Du and Mordatch draw their
# negative samples with Langevin dynamics, eq. (3) of the paper,
#
# $$\tilde x^k = \tilde x^{k-1} - \frac{\lambda}{2}\nabla_x E_\theta(\tilde x^{k-1}) + \omega^k, \qquad \omega^k \sim \mathcal N(0, \lambda),$$
#
# and argue that as $K \to \infty$ and $\lambda \to 0$ the chain's law $q_\theta$ approaches $p_\theta(x) \propto e^{-E_\theta(x)}$.
# In practice (appendix A.7) they run a *different* update: 60 steps, a step size of 10 on a gradient clipped to
# $\pm 0.01$ per value, and noise of standard deviation 0.005, so step and noise are no longer tied together.
#
# Before any network is trained, this chapter asks how good such samplers are **when the energy is known exactly**.
# On two-dimensional targets whose normalised density we can evaluate, every sample set can be scored against the
# truth. We
#
# 1. draw the six targets of `ebmlib.core.energies` as landscapes and densities;
# 2. run five samplers (random-walk Metropolis-Hastings, ULA, MALA, HMC and the paper's Langevin) on the same budget
#    and measure the grid KL to the exact density as a function of steps and of gradient evaluations;
# 3. measure the step-size bias of unadjusted Langevin against its closed form, and watch MALA remove it;
# 4. test mixing between two separated modes;
# 5. map what the noise level and the step size of the paper's Langevin do, next to the advice of A.8;
# 6. leave an interactive control for the reader.
#
# All samplers, targets, metrics and plots live in `ebmlib`; this notebook only chooses settings, calls them and
# reads the numbers. Every number quoted below is printed by the run itself.
#
# Sizes come from the preset `ebmlib.presets.preset("01_sampling", scale)`: `smoke` proves that every cell runs,
# `demo` is what this page shows (a few minutes on one CPU core; the summary prints the time this run took), and
# `paper` only means more chains, longer runs and a finer grid. This chapter is a 2D toy with no counterpart among
# the paper's experiments, so there is no "paper setting" to reproduce here beyond the A.7 sampler itself.

# %% tags=["parameters"]
scale = None        # "smoke" | "demo" | "paper"; None: $EBMLIB_SCALE, else "demo"
seed = 0            # 0 gives the committed outputs (and uses the shipped checkpoints)
out_dir = None      # metrics JSON and trained models; None: $EBMLIB_OUT, else "_results"
overrides = {}      # preset values to replace, e.g. {"n_test": 100}; also $EBMLIB_SET (JSON)

# %%
import os
import math
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

import ebmlib
import ebmlib.core.energies as E
import ebmlib.core.metrics as M
import ebmlib.notebook.plotting as P
import ebmlib.core.samplers as S
from ebmlib.notebook.results import save_metrics
from ebmlib.notebook.setup import start

ch = start("01_sampling", scale, seed, out_dir, overrides)
cfg, scale, out_dir = ch.cfg, ch.scale, ch.out_dir
# A batch of a few thousand 2D points is far too small to gain from intra-op threads, and on a busy 2-core
# machine extra threads spin-wait: one thread was 10x faster here than two when other jobs were running.
torch.set_num_threads(1)
plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9})
t_start, cpu_start = time.time(), time.process_time()
metrics = {}          # everything worth quoting goes here and into <out_dir>/01_sampling.json
print(f"scale = {cfg.scale}, torch {torch.__version__}, {torch.get_num_threads()} CPU thread")

# %% [markdown]
# ## 1. The targets
#
# `ebmlib.core.energies` provides six normalised densities on the plane: a correlated Gaussian, eight Gaussians on a
# circle, two concentric rings, two interleaved moons, a blurred checkerboard and two unequal Gaussian modes. For each
# one, `energy(x) = -log p(x)` exactly (so $Z = 1$), and `sample(n)` draws exact, independent samples. Top row: the
# energy landscape, clipped 12 nats above its minimum (a sampler sees only this surface and its slope). Bottom row: the
# density $p = e^{-E}$ with exact samples on top, the picture every sampler below tries to reproduce.

# %%
targets = {name: E.toy_2d(name) for name in E.TOY_2D}
gen = torch.Generator().manual_seed(0)
fig = P.landscape_figure(targets, grid_n=cfg.landscape_grid, n_samples=cfg.landscape_samples, generator=gen)

# %% [markdown]
# Because the plane is small, the partition function of eq. (2), $Z = \int e^{-E(x)}\,dx$, can be computed by brute
# force: `Grid2D.log_z` sums $e^{-E}$ over a fine grid (a midpoint rule). For the library's targets it should give
# $\log Z \approx 0$. As a check against an *unnormalised* energy with a known answer we add
# $E(x) = \lVert x\rVert^2 / (2 s^2)$, whose exact value is $\log Z = \log(2\pi s^2)$. This brute-force route
# is exactly what is impossible for images, which is why the rest of the book needs samplers at all.

# %%
rows = []
for name, target in targets.items():
    grid = M.Grid2D(target.bounds, cfg.landscape_grid)
    rows.append((name, round(grid.log_z(target.energy), 5) + 0.0, 0.0))
s_check = 1.7
grid = M.Grid2D((-6 * s_check, 6 * s_check), cfg.landscape_grid)
rows.append((f"|x|^2 / (2 * {s_check}^2)", grid.log_z(lambda x: x.pow(2).sum(-1) / (2 * s_check ** 2)),
             math.log(2 * math.pi * s_check ** 2)))
print(f"{'energy':24s} {'log Z (grid)':>13s} {'log Z (exact)':>14s}")
for name, lz, exact in rows:
    print(f"{name:24s} {lz:13.5f} {exact:14.5f}")
metrics["log_z_grid"] = {name: lz for name, lz, _ in rows}

# %% [markdown]
# ## 2. Five samplers on the same budget
#
# ### How to score a sample set
#
# For a set of $N$ samples we bin them on a grid over the target's bounds and compare the histogram
# $\hat p$ with the target's exact cell probabilities $q$ (`ebmlib.core.metrics.grid_kl`):
# $\mathrm{KL}(\hat p \,\Vert\, q) = \sum_i \hat p_i \log(\hat p_i / q_i)$. Samples that leave the grid are counted in
# the nearest edge cell, so escaping chains are penalised, not dropped.
#
# This estimator is **biased upwards**: even $N$ exact samples score about $(B_\text{eff} - 1)/(2N)$, where
# $B_\text{eff}$ is the number of cells that carry mass (expand the log to second order: each busy cell contributes a
# $\chi^2_1/(2N)$ term). A sampler cannot beat that floor with $N$ chains, so every curve below is drawn next to the
# same distance computed for $N$ exact samples (`exact_sample_floor`), and `kl_bias` predicts it from the cell
# probabilities alone. We also report total variation and an unbiased Gaussian-kernel MMD$^2$ against fresh exact
# samples (MMD$^2$ is zero in expectation for a perfect sampler, so it can come out slightly negative).

# %%
floor_rows, floors = [], {}
for name in cfg.compare_targets:
    target = targets[name]
    grid = M.Grid2D(target.bounds, cfg.grid_n)
    mean, sd = M.exact_sample_floor(target, grid, cfg.compare_chains, cfg.floor_repeats,
                                    generator=torch.Generator().manual_seed(1))
    floors[name] = (mean, sd)
    floor_rows.append((name, mean, sd, M.kl_bias(target, grid, cfg.compare_chains)))
print(f"grid {cfg.grid_n} x {cfg.grid_n}, N = {cfg.compare_chains} exact samples, {cfg.floor_repeats} repeats")
print(f"{'target':16s} {'measured floor':>16s} {'predicted (kl_bias)':>20s} {'(cells - 1)/(2N)':>17s}")
for name, mean, sd, pred in floor_rows:
    naive = (cfg.grid_n ** 2 - 1) / (2 * cfg.compare_chains)
    print(f"{name:16s} {mean:9.4f} ± {sd:.4f} {pred:20.4f} {naive:17.4f}")

# %% [markdown]
# The measured floor agrees with the prediction, and is well below the naive $(B-1)/(2N)$ that counts empty cells
# too. Distances below the floor's band are noise, not progress.
#
# ### The samplers
#
# Each sampler gets settings scaled to the target's narrowest length scale $w$ (the standard deviation of one of
# the eight Gaussians, or the width of a moon), so the comparison is about the algorithms, not about lucky tuning:
#
# | sampler | update | settings |
# | --- | --- | --- |
# | RWMH | $x' = x + \sigma\xi$, accepted with $\min(1, e^{E(x) - E(x')})$ | $\sigma = 1.5\,w$ |
# | ULA | $x' = x - h\nabla E(x) + \sqrt{2h}\,\xi$ (eq. (3) with $\lambda = 2h$), never rejected | $h = 0.5\,w^2$ |
# | MALA | the ULA proposal with a Metropolis-Hastings correction | $h = 0.5\,w^2$ |
# | HMC | 5 leapfrog steps of size $\epsilon$, unit mass, Metropolis on $H = E + \lVert p\rVert^2/2$ | $\epsilon = 0.5\,w$ |
# | Langevin (A.7) | noise 0.005, gradient clipped to $\pm 0.01$, step 10, exactly the paper's image settings | |
#
# All chains start from uniform noise over the target's bounding box, as the paper initialises its fresh chains,
# and every sampler sees the same starting points and the same number of steps. The distance is measured at
# several step counts along the way.

# %%
# w: the narrowest length scale of each target (std of one Gaussian, width of a moon or ring). The checkerboard is
# left out on purpose: its edges are blurred by only 0.05, which makes gradient samplers stiff (ULA is unstable
# unless h < 2 * 0.05**2) while the squares are 1.5 wide; try adding it.
widths = {"eight_gaussians": 0.25, "two_moons": 0.15, "two_rings": 0.15}
compare = {}          # target -> sampler label -> record
for name in cfg.compare_targets:
    target, w = targets[name], widths[name]
    grid = M.Grid2D(target.bounds, cfg.grid_n)
    logq = grid.normalise(log_density=target.log_prob)          # exact cell log-probabilities
    lo, hi = target.bounds
    x0 = lo + (hi - lo) * torch.rand(cfg.compare_chains, 2, generator=torch.Generator().manual_seed(2))
    reference = target.sample(cfg.mmd_points, generator=torch.Generator().manual_seed(3))
    samplers = {
        "RWMH": S.RandomWalkMH(scale=1.5 * w),
        "ULA": S.ULA(step_size=0.5 * w ** 2),
        "MALA": S.MALA(step_size=0.5 * w ** 2),
        "HMC": S.HMC(step_size=0.5 * w, n_leapfrog=5),
        "Langevin (A.7)": S.PaperLangevin(step_size=10.0, noise_std=0.005, grad_clip=0.01),
    }
    compare[name] = {}
    for label, sampler in samplers.items():
        gen = torch.Generator().manual_seed(4)
        x, done, kls, n_acc, t0 = x0, 0, [], 0.0, time.time()
        for n in cfg.compare_checkpoints:       # continue the same chains from one checkpoint to the next
            if n > done:
                res = sampler.run(target.energy, x, n - done, generator=gen)
                if res.acceptance_rate is not None:
                    n_acc += res.acceptance_rate * (n - done)
                x, done = res.x, n
            kls.append(M.grid_kl(x, logq, grid))
        cost = M.evaluations_per_step(sampler)
        weight_error = (M.mode_weights(x, target) - target.weights.double()).abs().max().item()
        compare[name][label] = dict(weight_error=weight_error,
            steps=list(cfg.compare_checkpoints), kl=kls, final=x, seconds=time.time() - t0,
            evals_per_step=cost["grad"] + cost["energy"], gradient=cost["grad"] > 0,
            tv=M.grid_tv(x, logq, grid), mmd2=M.mmd2(x[: cfg.mmd_points], reference, bandwidth=w),
            acceptance=n_acc / done if res.acceptance_rate is not None else None,
        )
    exact = target.sample(cfg.compare_chains, generator=torch.Generator().manual_seed(5))
    compare[name]["_exact"] = dict(kl=M.grid_kl(exact, logq, grid), tv=M.grid_tv(exact, logq, grid),
                                   mmd2=M.mmd2(exact[: cfg.mmd_points], reference, bandwidth=w), final=exact,
                                   weight_error=(M.mode_weights(exact, target) - target.weights.double()).abs().max().item())
    # A perfect sampler *within* each mode that never moves between modes keeps the shares of the start:
    # exact samples of the same mixture re-weighted with those shares show what that alone costs in KL.
    start_shares = M.mode_weights(x0, target)
    stuck = E.Mixture(target.components, weights=start_shares.float().tolist())
    compare[name]["_stuck"] = dict(
        shares=start_shares.tolist(),
        kl=sum(M.grid_kl(stuck.sample(cfg.compare_chains, generator=torch.Generator().manual_seed(20 + r)), logq, grid)
               for r in range(cfg.floor_repeats)) / cfg.floor_repeats)
    seconds = sum(r["seconds"] for k, r in compare[name].items() if not k.startswith("_"))
    print(f"{name}: {len(samplers)} samplers x {cfg.compare_checkpoints[-1]} steps x {cfg.compare_chains} chains "
          f"in {seconds:.1f} s")

# %% [markdown]
# Left: distance against the number of sampler steps. Right: the same runs against the work they cost, counted as
# energy-gradient evaluations per chain (HMC pays one gradient per leapfrog step plus one at the start, MALA two as
# implemented here, because it recomputes the gradient of the current state; random-walk MH needs no gradient and
# is drawn against its two energy evaluations per step, which are cheaper than a gradient). The dashed line and band
# are the exact-sample floor (mean and two standard deviations). The dotted line is a second reference: exact
# samples of the same mixture but with the component weights that the uniform start happens to give (a chain that
# samples each mode perfectly but never moves between modes keeps those weights). On eight Gaussians a square start
# box is not neutral: the diagonal modes own the corners of the box, so they start with more chains.

# %%
styles = {"RWMH": dict(color="tab:gray"), "ULA": dict(color="tab:orange"), "MALA": dict(color="tab:blue"),
          "HMC": dict(color="tab:green"), "Langevin (A.7)": dict(color="tab:red", ls="--")}
fig, axes = plt.subplots(len(cfg.compare_targets), 2, figsize=(10, 3.4 * len(cfg.compare_targets)), squeeze=False)
for row, name in zip(axes, cfg.compare_targets):
    runs = {k: v for k, v in compare[name].items() if not k.startswith("_")}
    P.plot_curves({k: (v["steps"], v["kl"]) for k, v in runs.items()}, ax=row[0], floor=floors[name],
                  styles=styles, title=f"{name}: KL vs steps")
    P.plot_curves({k: ([s * v["evals_per_step"] for s in v["steps"]], v["kl"]) for k, v in runs.items()}, ax=row[1],
                  floor=floors[name], styles=styles, xlabel="evaluations per chain (gradients; RWMH: energies)",
                  title=f"{name}: KL vs work")
    for ax in row:
        ax.axhline(compare[name]["_stuck"]["kl"], color="0.3", ls=":", lw=1,
                   label="exact within modes, start weights")
handles, labels = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0.07, 1, 1))

# %% [markdown]
# The final samples of every sampler (red) over the exact density, and the same number of exact samples for
# reference:

# %%
labels = [k for k in compare[cfg.compare_targets[0]] if not k.startswith("_") or k == "_exact"]
fig, axes = P.panel_grid(len(cfg.compare_targets), len(labels), size=2.0)
for row, name in zip(axes, cfg.compare_targets):
    target = targets[name]
    grid = M.Grid2D(target.bounds, cfg.landscape_grid)
    for ax, label in zip(row, labels):
        rec = compare[name][label]
        P.plot_density(target, grid, ax=ax, gamma=0.7)
        P.plot_samples(rec["final"], ax=ax, grid=grid, s=1.0, alpha=0.4, color="crimson", max_points=2000)
        ax.set_title(f"{'exact' if label == '_exact' else label}\nKL {rec['kl'] if label == '_exact' else rec['kl'][-1]:.3f}",
                     fontsize=8)
fig.tight_layout()

# %%
lines = ["| target | sampler | KL at last step | TV | MMD² (×10³) | largest mode-weight error | acceptance "
         "| evals / step | wall time (s) |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name in cfg.compare_targets:
    for label, rec in compare[name].items():
        if label.startswith("_"):
            continue
        acc = "—" if rec["acceptance"] is None else f"{rec['acceptance']:.2f}"
        lines.append(f"| {name} | {label} | {rec['kl'][-1]:.3f} | {rec['tv']:.3f} | {1e3 * rec['mmd2']:.2f} "
                     f"| {rec['weight_error']:.3f} | {acc} | {rec['evals_per_step']} | {rec['seconds']:.1f} |")
    ex, stuck = compare[name]["_exact"], compare[name]["_stuck"]
    lines.append(f"| {name} | *exact samples* | {ex['kl']:.3f} | {ex['tv']:.3f} | {1e3 * ex['mmd2']:.2f} "
                 f"| {ex['weight_error']:.3f} | — | — | — |")
    start_error = max(abs(a - b) for a, b in zip(stuck["shares"], targets[name].weights.tolist()))
    lines.append(f"| {name} | *exact within modes, start weights* | {stuck['kl']:.3f} | | | {start_error:.3f} | — | — | — |")
display(Markdown("\n".join(lines)))
metrics["compare"] = {name: {label: {k: rec[k] for k in ("steps", "kl", "tv", "mmd2", "weight_error", "acceptance",
                                                         "evals_per_step")}
                             for label, rec in compare[name].items() if not label.startswith("_")}
                      for name in cfg.compare_targets}
metrics["compare_exact"] = {name: {k: compare[name]["_exact"][k] for k in ("kl", "tv", "mmd2")}
                            for name in cfg.compare_targets}
metrics["compare_floor"] = {name: {"mean": m, "sd": s} for name, (m, s) in floors.items()}
metrics["compare_stuck_kl"] = {name: compare[name]["_stuck"]["kl"] for name in cfg.compare_targets}
metrics["compare_chains"] = cfg.compare_chains

# %%
last = cfg.compare_checkpoints[-1]
notes = []
for name in cfg.compare_targets:
    runs = {k: v for k, v in compare[name].items() if not k.startswith("_")}
    m, sd = floors[name]
    stuck = compare[name]["_stuck"]["kl"]
    at_floor = [k for k, v in runs.items() if v["kl"][-1] < m + 3 * sd]
    above = [f"{k} ({v['kl'][-1]:.3f}, mode weights off by up to {v['weight_error']:.3f})"
             for k, v in runs.items() if v["kl"][-1] >= m + 3 * sd]
    notes.append(f"* **{name}** after {last} steps: within three standard deviations of the exact-sample floor "
                 f"({m:.3f} ± {sd:.3f}): {', '.join(at_floor) or 'none'}; above it: {', '.join(above) or 'none'}. "
                 f"Exact samples with the start's mode weights score {stuck:.3f}.")
display(Markdown("\n".join(notes)))

# %% [markdown]
# What to read from this:
#
# * The three Metropolis-corrected samplers (RWMH, MALA, HMC) leave the target exactly invariant and end at or near
#   the floor. What they can still get wrong is not the shape of each mode but how the chains are shared between
#   modes: a local sampler inherits the shares of its start and corrects them only by crossing between modes
#   (section 4). The mode-weight column and the dotted reference measure that part.
# * On the moons, whose long curved modes reward long trajectories, HMC reaches the floor in the fewest *steps*;
#   but each of its steps costs six gradients, and on the work axis its lead shrinks. On the eight Gaussians the
#   Langevin-type samplers start fastest, because every gradient step pulls a chain halfway to its nearest mode.
# * ULA uses the same proposal as MALA but never rejects. At this step size ($h = 0.5w^2$) its stationary law is
#   wider than the target, so its KL levels off above MALA's and more steps do not help. Section 3 measures this
#   bias exactly.
# * The paper's Langevin with the A.7 settings does not sample $p$ on this scale: the clipped gradient moves each
#   coordinate by at most $10 \times 0.01 = 0.1$ per step and the noise (0.005) is tiny, so chains slide into the
#   nearest well and settle near its bottom, far from the floor however long they run. In the paper this is
#   acceptable because the sampler only has to produce *negative samples* for training, with a replay buffer
#   carrying chains across iterations; it is not meant to draw exact samples of a fixed energy.

# %% [markdown]
# ## 3. The step-size bias of unadjusted Langevin
#
# On a Gaussian target $\mathcal N(0, s^2 I)$ ULA is linear and its bias can be computed in closed form. With
# $a = h / s^2$, one step is $x' = (1 - a)\,x + \sqrt{2h}\,\xi$, so the stationary variance $v$ solves
# $v = (1-a)^2 v + 2h$:
#
# $$v_\text{ULA} = \frac{2h}{1 - (1-a)^2} = \frac{s^2}{1 - h/(2s^2)},$$
#
# larger than $s^2$ for every $h > 0$ and infinite at $h = 2s^2$, where the chain diverges. MALA proposes the same
# move and accepts it with the Metropolis-Hastings probability, so its stationary variance is exactly $s^2$ at any
# step size; what it pays instead is a falling acceptance rate.
#
# The paper's update (`PaperLangevin`) adds the noise *before* the gradient step and returns the state after the
# step. With $\sigma = \sqrt{2h}$ and no clipping it is the same Markov chain as ULA, observed half a step later,
# $x_\text{paper} = (1-a)(x + \sqrt{2h}\,\xi)$, which gives
#
# $$v_\text{paper} = \frac{(1-a)^2\, s^2}{1 - h/(2s^2)} = v_\text{ULA} - 2h,$$
#
# *narrower* than $s^2$ (and exactly zero at $h = s^2$, where the gradient step lands on the mean). The same
# algorithm is biased in opposite directions depending on where its state is read off.
#
# We measure all three: chains start from exact samples of $\mathcal N(0, I)$ ($s = 1$), run a burn-in, and then the
# variance is averaged over all chains, both coordinates and the remaining steps.

# %%
s = 1.0
gauss = E.Gaussian((0.0, 0.0), s ** 2)
bias = {"h": [], "ULA": [], "MALA": [], "paper": [], "MALA acceptance": []}
t0 = time.time()
for h in cfg.bias_step_sizes:
    bias["h"].append(h)
    for label, sampler in [("ULA", S.ULA(step_size=h)), ("MALA", S.MALA(step_size=h)),
                           ("paper", S.PaperLangevin(step_size=h, noise_std=math.sqrt(2 * h), grad_clip=None))]:
        gen = torch.Generator().manual_seed(6)
        x0 = gauss.sample(cfg.bias_chains, generator=gen)
        warm = sampler.run(gauss.energy, x0, cfg.bias_burn_in, generator=gen)
        run = sampler.run(gauss.energy, warm.x, cfg.bias_steps, trace=True, generator=gen)
        bias[label].append(run.trace[1:].pow(2).mean().item())     # E[x^2] = variance (the mean is 0)
        if label == "MALA":
            bias["MALA acceptance"].append(run.acceptance_rate)
theory_ula = [s ** 2 / (1 - h / (2 * s ** 2)) for h in bias["h"]]
theory_paper = [(1 - h / s ** 2) ** 2 * s ** 2 / (1 - h / (2 * s ** 2)) for h in bias["h"]]
print(f"{len(cfg.bias_step_sizes)} step sizes x 3 samplers in {time.time() - t0:.1f} s")

lines = ["| step h | ULA measured | ULA theory | MALA measured | MALA acceptance | paper order measured | paper order theory |",
         "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for i, h in enumerate(bias["h"]):
    lines.append(f"| {h:g} | {bias['ULA'][i]:.3f} | {theory_ula[i]:.3f} | {bias['MALA'][i]:.3f} | "
                 f"{bias['MALA acceptance'][i]:.2f} | {bias['paper'][i]:.3f} | {theory_paper[i]:.3f} |")
display(Markdown("\n".join(lines)))
metrics["ula_bias"] = dict(s=s, **bias, theory_ula=theory_ula, theory_paper=theory_paper)

# %%
hh = torch.linspace(0.005, max(cfg.bias_step_sizes) * 1.02, 200)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
ax = axes[0]
ax.plot(hh, s ** 2 / (1 - hh / (2 * s ** 2)), color="tab:orange", lw=1, label=r"ULA theory $s^2/(1-h/2s^2)$")
ax.plot(hh, (1 - hh / s ** 2) ** 2 * s ** 2 / (1 - hh / (2 * s ** 2)), color="tab:red", lw=1, ls="--",
        label=r"paper order theory $v_{ULA} - 2h$")
ax.axhline(s ** 2, color="tab:blue", lw=1, label="target $s^2$")
ax.plot(bias["h"], bias["ULA"], "o", color="tab:orange", label="ULA measured")
ax.plot(bias["h"], bias["paper"], "s", color="tab:red", mfc="none", label="paper order measured")
ax.plot(bias["h"], bias["MALA"], "D", color="tab:blue", label="MALA measured")
ax.set_yscale("log")
ax.set_xlabel("step size h")
ax.set_ylabel("stationary variance per coordinate")
ax.legend(fontsize=7)
ax.set_title(r"Gaussian target, $s = 1$")
ax = axes[1]
ax.plot(bias["h"], bias["MALA acceptance"], "D-", color="tab:blue")
ax.set_xlabel("step size h")
ax.set_ylabel("MALA acceptance rate")
ax.set_ylim(0, 1.02)
ax.set_title("the price MALA pays instead")
for a in axes:
    a.grid(alpha=0.3)
fig.tight_layout()

# %%
worst = max(abs(m - t) / t for m, t in zip(bias["ULA"], theory_ula))
mala_dev = max(abs(m - s ** 2) for m in bias["MALA"])
display(Markdown(
    f"Across the {len(bias['h'])} step sizes, the measured ULA variance is within {100 * worst:.1f}% of the closed "
    f"form, from {bias['ULA'][0]:.3f} at $h = {bias['h'][0]:g}$ to {bias['ULA'][-1]:.3f} at $h = {bias['h'][-1]:g}$, "
    f"while MALA stays within {mala_dev:.3f} of $s^2 = 1$ at every step size, its acceptance falling from "
    f"{bias['MALA acceptance'][0]:.2f} to {bias['MALA acceptance'][-1]:.2f}."))

# %% [markdown]
# ## 4. Mixing between separated modes
#
# `two_modes` puts weights 0.3 and 0.7 on two Gaussians of standard deviation 0.5, a distance $d$ apart on the
# $x$ axis. A sampler only gets those weights right if its chains cross between the modes often enough. Crossing
# means climbing the energy barrier between them, whose height grows like $d^2$; the chance of a local move
# climbing it falls like $e^{-\text{height}}$. We start chains from uniform noise over a box that is symmetric about
# the midpoint, so about half start in each basin, run every sampler (with the recipe of section 2 at $w = 0.5$)
# and read off the share of samples each mode explains (`metrics.mode_weights`, the mean responsibility).
# A sampler that never crosses keeps roughly the share it started with.

# %%
w_mix, box = 0.5, 5.0
mix = {"separation": list(cfg.mix_separations), "barrier": [], "init": [], "truth": None}
mix_samplers = {
    "RWMH": S.RandomWalkMH(scale=1.5 * w_mix),
    "ULA": S.ULA(step_size=0.5 * w_mix ** 2),
    "MALA": S.MALA(step_size=0.5 * w_mix ** 2),
    "HMC": S.HMC(step_size=0.5 * w_mix, n_leapfrog=5),
    "Langevin (A.7)": S.PaperLangevin(step_size=10.0, noise_std=0.005, grad_clip=0.01),
}
for label in mix_samplers:
    mix[label] = []
t0 = time.time()
x0 = -box + 2 * box * torch.rand(cfg.mix_chains, 2, generator=torch.Generator().manual_seed(7))
for d in cfg.mix_separations:
    target = E.two_modes(separation=d)
    mix["truth"] = target.weights[0].item()
    # barrier height: energy at the saddle (on the x axis, between the modes) minus energy at the deeper mode
    xs = torch.linspace(-d / 2, d / 2, 401)
    line = torch.stack([xs, torch.zeros_like(xs)], -1)
    mix["barrier"].append((target.energy(line).max() - target.energy(torch.tensor([[d / 2, 0.0]]))).item())
    mix["init"].append(M.mode_weights(x0, target)[0].item())
    for label, sampler in mix_samplers.items():
        res = sampler.run(target.energy, x0, cfg.mix_steps, generator=torch.Generator().manual_seed(8))
        mix[label].append(M.mode_weights(res.x, target)[0].item())
print(f"{len(cfg.mix_separations)} separations x {len(mix_samplers)} samplers x {cfg.mix_steps} steps "
      f"x {cfg.mix_chains} chains in {time.time() - t0:.1f} s")

lines = ["| separation d | barrier (nats) | share at start | " + " | ".join(mix_samplers) + " | truth |",
         "| ---: | ---: | ---: | " + " | ".join("---:" for _ in mix_samplers) + " | ---: |"]
for i, d in enumerate(mix["separation"]):
    lines.append(f"| {d:g} | {mix['barrier'][i]:.1f} | {mix['init'][i]:.3f} | "
                 + " | ".join(f"{mix[k][i]:.3f}" for k in mix_samplers) + f" | {mix['truth']:.3f} |")
display(Markdown("Weight of the left (lighter) mode after "
                 f"{cfg.mix_steps} steps:\n\n" + "\n".join(lines)))
metrics["mode_weights"] = mix

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for label in mix_samplers:
    ax.plot(mix["separation"], mix[label], marker="o", label=label, **{"ls": "-", **styles[label]})
ax.axhline(mix["truth"], color="k", lw=1, label="true weight")
ax.plot(mix["separation"], mix["init"], "k:", lw=1, label="share at start")
ax.set_xlabel("separation d between the modes")
ax.set_ylabel("weight of the left mode")
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
twin = ax.secondary_xaxis("top", functions=(lambda d: d, lambda d: d))
twin.set_xticks(mix["separation"], [f"{b:.0f}" for b in mix["barrier"]])
twin.set_xlabel("barrier height (nats)")
fig.tight_layout()

# %% [markdown]
# The trajectories make the mechanism visible (drawn in the style of the paper's Fig. 14, paths over the energy
# landscape; a circle marks the start, a cross the end of the drawn segment). MALA chains, started two in each
# mode, on a close and a far pair of modes; top, the first 100 steps of two of them; below, the $x$ coordinate of
# all of them against the step number, over the whole run:

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), gridspec_kw={"height_ratios": [1.3, 1]})
for col, d in enumerate(cfg.traj_separations):
    target = E.two_modes(separation=d)
    start = torch.tensor([[-d / 2, 0.3], [d / 2, -0.3], [-d / 2, -0.3], [d / 2, 0.3]])[: cfg.traj_chains]
    grid = M.Grid2D(((-d / 2 - 2.5, d / 2 + 2.5), (-2.5, 2.5)), 100)
    res = S.MALA(step_size=0.5 * w_mix ** 2).run(target.energy, start, cfg.traj_steps, trace=True,
                                                  generator=torch.Generator().manual_seed(9))
    P.plot_energy(target.energy, grid, ax=axes[0, col], span=10)
    shown = min(cfg.traj_steps, 100)      # the first steps only, so single paths stay readable
    P.plot_trajectories(res.trace[: shown + 1], ax=axes[0, col], chains=range(min(2, start.shape[0])), lw=0.7)
    xs = res.trace[:, :, 0]
    both = ((xs < -d / 4).any(0) & (xs > d / 4).any(0)).sum().item()
    axes[0, col].set_title(f"MALA, d = {d:g}: {both} of {start.shape[0]} chains visit both modes", fontsize=9)
    axes[1, col].plot(res.trace[:, :, 0].numpy(), lw=0.7)
    for m in (-d / 2, d / 2):
        axes[1, col].axhline(m, color="k", lw=0.5, ls=":")
    axes[1, col].set_xlabel("step")
    axes[1, col].set_ylabel("x coordinate")
fig.tight_layout()

# %%
proper = [k for k in mix_samplers if k != "Langevin (A.7)"]
err_near = max(abs(mix[k][0] - mix["truth"]) for k in proper)
err_far = max(abs(mix[k][-1] - mix["init"][-1]) for k in proper)
paper_shift = max(abs(a - b) for a, b in zip(mix["Langevin (A.7)"], mix["init"]))
display(Markdown(
    f"At the smallest separation (barrier {mix['barrier'][0]:.1f} nats) every sampler but the paper's Langevin "
    f"ends within {err_near:.3f} of the true weight {mix['truth']:.2f}. At the largest (barrier "
    f"{mix['barrier'][-1]:.1f} nats) they all end within {err_far:.3f} of the share they started with, "
    f"{mix['init'][-1]:.3f}. The paper's Langevin never leaves its starting shares by more than {paper_shift:.3f} "
    f"at any separation."))

# %% [markdown]
# Once the barrier is a few nats high, the modes are all *found* (chains start in each of them) but their *weights*
# are not: the chains cannot cross, so the weights are whatever the initialisation gave. Every local sampler shares
# this failure; the Metropolis correction makes each mode's shape right, not the balance between modes. The paper's
# Langevin with the A.7 settings cannot cross even a low barrier because its noise is far too small. The paper
# works around this with a replay buffer and uniform-noise restarts rather than with a better sampler, and it is
# one way a model's samples can look right while the probabilities it assigns to its modes are wrong.

# %% [markdown]
# ## 5. Noise and step size in the paper's Langevin
#
# The paper's update decouples the noise standard deviation $\sigma$ from the step size $h$:
# $x \leftarrow x + \sigma\xi,\; x \leftarrow x - h\,\nabla E(x)$. Without clipping, a small-$h$ analysis shows
# this samples approximately $p_T(x) \propto e^{-E(x)/T}$ at the temperature
#
# $$T = \frac{\sigma^2}{2h},$$
#
# so only $T = 1$ targets $p$ itself; $T < 1$ sharpens it (towards gradient descent into the nearest minimum as
# $T \to 0$) and $T > 1$ flattens it. At finite $h$ the discretisation adds its own bias. On a Gaussian mode of
# width $s$, with $a = h/s^2$, the paper's update $x' = (1-a)(x + \sigma\xi)$ has the stationary variance
#
# $$v = \frac{(1-a)^2\,\sigma^2}{a\,(2-a)},$$
#
# which is $(1-a)^2 s^2/(1-a/2)$ at $T = 1$ (section 3): a large step makes the modes too narrow even at the "right"
# temperature, and a hotter $T$ can undo that. For the eight Gaussians $s = 0.25$.
#
# Appendix A.8 reports that very low noise gave poor results and that high noise
# explored many modes at first but then made training collapse, and recommends fixing $\sigma = 0.005$ and tuning the
# step size (10 to 100 for images in $[0, 1]$ with the gradient clipped to 0.01). Here we cannot see training, but we
# can see what the sampler does to a fixed energy. Each panel runs the paper's update (no clipping) on eight
# Gaussians from uniform noise; rows are step sizes, columns noise levels, titles give $T$ and the grid KL. The
# settings are chosen so that the diagonal has $T = 1$ (for the three demo step sizes $\sigma = \sqrt{2h}$ is one
# of the noise levels).

# %%
target = targets["eight_gaussians"]
grid_plot = M.Grid2D(target.bounds, cfg.landscape_grid)
grid_score = M.Grid2D(target.bounds, cfg.grid_n)
lo, hi = target.bounds
x0_panel = lo + (hi - lo) * torch.rand(cfg.panel_chains, 2, generator=torch.Generator().manual_seed(10))
panel = {"step_size": list(cfg.panel_step_sizes), "noise_std": list(cfg.panel_noise_stds), "kl": [], "temperature": []}
t0 = time.time()
fig, axes = P.panel_grid(len(cfg.panel_step_sizes), len(cfg.panel_noise_stds), size=2.0)
for i, h in enumerate(cfg.panel_step_sizes):
    panel["kl"].append([])
    panel["temperature"].append([])
    for j, sigma in enumerate(cfg.panel_noise_stds):
        temp = sigma ** 2 / (2 * h)
        _, _, kl = P.sampler_panel(target, S.PaperLangevin(step_size=h, noise_std=sigma, grad_clip=None), x0_panel,
                                   cfg.panel_steps, grid_plot, ax=axes[i, j], seed=11, kl_grid=grid_score,
                                   title=f"h={h:g}, σ={sigma:g}, T={temp:.2g}", max_points=1000)
        panel["kl"][i].append(kl)
        panel["temperature"][i].append(temp)
fig.tight_layout()
panel_floor = M.exact_sample_floor(target, grid_score, cfg.panel_chains, cfg.floor_repeats,
                                   generator=torch.Generator().manual_seed(12))

metrics["noise_step_grid"] = dict(panel, steps=cfg.panel_steps, chains=cfg.panel_chains, floor=panel_floor)
print(f"{len(cfg.panel_step_sizes) * len(cfg.panel_noise_stds)} panels in {time.time() - t0:.1f} s; "
      f"exact-sample floor with {cfg.panel_chains} samples: {panel_floor[0]:.3f} ± {panel_floor[1]:.3f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for i, h in enumerate(panel["step_size"]):
    ax.plot(panel["temperature"][i], panel["kl"][i], "o-", label=f"step size h = {h:g}")
ax.axvline(1.0, color="k", lw=0.8, ls=":", label="T = 1 (samples p)")
ax.axhline(panel_floor[0], color="0.3", ls="--", lw=1, label="exact-sample floor")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel(r"temperature $T = \sigma^2 / 2h$")
ax.set_ylabel("grid KL after the run")
ax.grid(alpha=0.3, which="both", lw=0.5)
ax.legend(fontsize=7)
fig.tight_layout()
kl_best, i_best, j_best = min((panel["kl"][i][j], i, j) for i in range(len(panel["step_size"]))
                              for j in range(len(panel["noise_std"])))
low = [r[0] for r in panel["kl"]]
high = [r[-1] for r in panel["kl"]]
at_one = [(panel["step_size"][i], panel["kl"][i][j]) for i in range(len(panel["step_size"]))
          for j in range(len(panel["noise_std"])) if abs(math.log(panel["temperature"][i][j])) < 0.01]
text = (f"Lowest KL in the grid: {kl_best:.3f} at h = {panel['step_size'][i_best]:g}, "
        f"σ = {panel['noise_std'][j_best]:g} (T = {panel['temperature'][i_best][j_best]:.2g}); the exact-sample "
        f"floor for {cfg.panel_chains} samples is {panel_floor[0]:.3f}. ")
if at_one:
    text += ("At T = 1: " + ", ".join(f"KL {kl:.3f} for h = {h:g}" for h, kl in at_one) + ". ")
text += (f"With the smallest noise, σ = {panel['noise_std'][0]:g}, the KL is {min(low):.2f}"
         + (f" to {max(low):.2f}" if max(low) - min(low) >= 0.005 else "")
         + f" at every step size; with the largest, σ = {panel['noise_std'][-1]:g}, {min(high):.2f} to {max(high):.2f}.")
display(Markdown(text))

# %% [markdown]
# Reading the grid and the curve:
#
# * **Low noise** (the left column, which includes the $\sigma = 0.005$ of A.8): $T \ll 1$, the chains descend into
#   the nearest Gaussian and stay at its centre. Every mode is found (the uniform start covers them all) but the
#   samples are far too concentrated, and, as section 4 showed, chains cannot move between modes. This matches A.8's
#   "very low levels of noise led to poor results" if samples must represent the model's distribution.
# * **High noise** (right columns): $T \gg 1$ flattens the energy by a factor $T$, so chains spread between the modes
#   (the "mode exploration" of A.8) but the samples describe a blurred distribution. A model trained on such negatives
#   is pushed to match a hot version of itself, one plausible route to the collapse A.8 describes.
# * The KL is lowest at $T = 1$ with a small step. Along the $T = 1$ diagonal it grows with $h$: the modes come
#   out too narrow, the discretisation bias computed above. In the largest-step row a hotter $T$ compensates (the
#   formula for $v$ puts the right width at $\sigma^2 = s^2 a(2-a)/(1-a)^2$), so a decoupled step and noise can be
#   tuned into a decent sampler without $T = 1$: tuning them separately, as the paper does, is not wrong in itself,
#   it just has no reason to land on $p$.
#
# The paper's advice ($\sigma = 0.005$, step 10 to 100, gradient clipped to 0.01) corresponds to a very cold sampler
# used as an optimiser with a little noise. For training it works because the replay buffer, not the chain,
# provides diversity; as a sampler of a fixed energy it is poor, which section 2 measured directly. This grid
# leaves out the paper's gradient clip; with a clip $c$ the gradient step per coordinate is at most $hc$, so on
# steep walls the update becomes sign-gradient descent (the A.7 runs of sections 2 and 4 include it).

# %% [markdown]
# ## 6. Try it yourself
#
# The control below reruns the paper's update on the same eight Gaussians with the step size, noise and number of
# steps you choose, then redraws the samples and their KL (press **run**; each run takes a second or two). It
# needs a live Jupyter kernel: in the static HTML book the panel grid of section 5 shows the same sampler over a
# grid of settings. Things to try: hold $T = \sigma^2/2h$ at 1 and raise $h$ until the ring of modes blurs; set
# $\sigma = 0.005$ and watch the chains freeze at the mode centres; lengthen the run at high noise to see that more
# steps do not fix a wrong temperature.

# %%
x0_widget = lo + (hi - lo) * torch.rand(cfg.widget_chains, 2, generator=torch.Generator().manual_seed(13))
explorer = P.interactive_langevin(targets["eight_gaussians"], x0_widget, grid_plot, max_steps=cfg.widget_max_steps,
                                  step_size=0.01, noise_std=0.14, n_steps=min(200, cfg.widget_max_steps))
display(explorer)

# %% [markdown]
# ## 7. Summary
#
# The numbers of this run, gathered in one place and written to `<out_dir>/01_sampling.json` for the results
# pages:

# %%
lines = [f"**Scale `{cfg.scale}`**: the cells after the set-up took {time.time() - t_start:.0f} s of wall time "
         f"({time.process_time() - cpu_start:.0f} s of CPU time in this kernel).", ""]
for name in cfg.compare_targets:
    runs = {k: v for k, v in compare[name].items() if not k.startswith("_")}
    m, sd = floors[name]
    lines.append(f"* **{name}**, {cfg.compare_chains} chains, {cfg.compare_checkpoints[-1]} steps, grid KL "
                 f"(exact-sample floor {m:.3f} ± {sd:.3f}): "
                 + ", ".join(f"{k} {v['kl'][-1]:.3f}" for k, v in runs.items()) + ".")
i_mid = len(bias["h"]) // 2
lines.append(f"* **ULA bias** on N(0, 1): variance {bias['ULA'][i_mid]:.3f} at h = {bias['h'][i_mid]:g} "
             f"(theory {theory_ula[i_mid]:.3f}); MALA {bias['MALA'][i_mid]:.3f}; the paper's ordering "
             f"{bias['paper'][i_mid]:.3f} (theory {theory_paper[i_mid]:.3f}).")
lines.append(f"* **Mode weights** (true left weight {mix['truth']:.2f}): at d = {mix['separation'][0]:g} "
             + ", ".join(f"{k} {mix[k][0]:.2f}" for k in mix_samplers)
             + f"; at d = {mix['separation'][-1]:g} "
             + ", ".join(f"{k} {mix[k][-1]:.2f}" for k in mix_samplers)
             + f" (share at start {mix['init'][-1]:.2f}).")
display(Markdown("\n".join(lines)))
metrics["wall_seconds"] = time.time() - t_start
metrics["cpu_seconds"] = time.process_time() - cpu_start
path = save_metrics(out_dir, "01_sampling", cfg.scale, metrics)
print("metrics written to", os.path.relpath(path))

# %% [markdown]
# In short: on a known energy, the Metropolis-corrected samplers converge to the exact-sample floor, with HMC
# fastest per step but not per gradient; ULA converges to the wrong distribution by an amount that the closed
# form predicts; no local sampler moves weight between well-separated modes; and the paper's Langevin, with its
# decoupled noise, is best understood as a low-temperature sampler. The next chapters train energies whose
# density is *not* known, and use these samplers, mostly the last one, to do it.
