# %% [markdown]
# # Sampling from known energies
#
# Everything an energy-based model does at generation time runs through a sampler. {cite:t}`du2019implicit` draw
# their negative samples with Langevin dynamics, eq. (3) of the paper,
#
# $$\tilde x^k = \tilde x^{k-1} - \frac{\lambda}{2}\nabla_x E_\theta(\tilde x^{k-1}) + \omega^k, \qquad \omega^k \sim \mathcal N(0, \lambda),$$
#
# and argue that as $K \to \infty$ and $\lambda \to 0$ the chain's law $q_\theta$ approaches $p_\theta(x) \propto e^{-E_\theta(x)}$.
# In practice (appendix A.7) they run a *different* update: 60 steps, a step size of 10 on a gradient clipped to
# $\pm 0.01$ per value, and noise of standard deviation 0.005, so step and noise are no longer tied together.
# This page writes the step size as $h$ (so the paper's $\lambda$ in eq. (3) is $2h$) and the noise standard deviation
# as $\sigma$, following the {ref}`notation of the theory page <theory-notation>`, whose section 6 derives the
# samplers used here.
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
# All samplers, targets and metrics live in `ebmlib.core`, and the experiments of this page in
# `ebmlib.chapters.sampling`; this notebook only chooses settings, calls them and reads the numbers. Every
# number quoted below is printed by the run itself.
#
# Sizes come from the preset `ebmlib.presets.preset("01_sampling", scale)`: `smoke` proves that every cell runs,
# `demo` is what this page shows (a few minutes on one CPU core; the summary prints the time this run took), and
# `paper` only means more chains, longer runs and a finer grid. This chapter is a 2D toy with no counterpart among
# the paper's experiments, so there is no "paper setting" to reproduce here beyond the A.7 sampler itself.

# %% tags=["install"]
# Colab / Binder: pip install the book's package (and this chapter's extras) if missing.
import importlib.util, os, subprocess, sys  # noqa: E401
if importlib.util.find_spec("ebmlib") is None:
    repo = "git+https://github.com/ebm-book/ebm-book"
    src = os.environ.get("EBMLIB_INSTALL_FROM", repo)
    pip = [sys.executable, "-m", "pip", "install", "-q", f"ebmlib[run] @ {src}"]
    subprocess.run(pip, check=True)

# %% tags=["parameters"]
scale = None        # "smoke" | "demo" | "paper"; None: $EBMLIB_SCALE, else "demo"
seed = 0            # 0 gives the committed outputs (and uses the shipped checkpoints)
out_dir = None      # metrics JSON and trained models; None: $EBMLIB_OUT, else "_results"
overrides = {}      # preset values to replace, e.g. {"grid_n": 30}; or $EBMLIB_SET (JSON)

# %%
import ebmlib.chapters.sampling as chap
import ebmlib.core.energies as E
import ebmlib.notebook.plotting as P
from ebmlib.notebook.setup import start

ch = start("01_sampling", scale, seed, out_dir, overrides)
cfg = ch.cfg
print(ch.describe())

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
fig = P.landscape_figure(targets, grid_n=cfg.landscape_grid,
                         n_samples=cfg.landscape_samples, generator=ch.rng(0))

# %% [markdown]
# Because the plane is small, the partition function of eq. (2), $Z = \int e^{-E(x)}\,dx$, can be computed by brute
# force: `Grid2D.log_z` sums $e^{-E}$ over a fine grid (a midpoint rule). For the library's targets it should give
# $\log Z \approx 0$. As a check against an *unnormalised* energy with a known answer we add
# $E(x) = \lVert x\rVert^2 / (2 s^2)$, whose exact value is $\log Z = \log(2\pi s^2)$. This brute-force route
# is exactly what is impossible for images, which is why the rest of the book needs samplers at all.

# %%
rows = chap.log_z_rows(targets, cfg.landscape_grid)
ch.table(["energy", "log Z (grid)", "log Z (exact)"], rows, digits=5)
ch.metrics["log_z_grid"] = {name: lz for name, lz, _ in rows}

# %% [markdown]
# ## 2. Five samplers on the same budget
#
# ### How to score a sample set
#
# For a set of $N$ samples we bin them on a grid over the target's bounds and compare the histogram
# $\hat p$ with the target's exact cell probabilities $p_i$ (`ebmlib.core.metrics.grid_kl`):
# $\mathrm{KL}(\hat p \,\Vert\, p) = \sum_i \hat p_i \log(\hat p_i / p_i)$. Samples that leave the grid are counted in
# the nearest edge cell, so escaping chains are penalised, not dropped.
#
# This estimator is **biased upwards**: even $N$ exact samples score about $(B_\text{eff} - 1)/(2N)$, where
# $B_\text{eff}$ is the number of cells that carry mass (expand the log to second order: each busy cell contributes a
# $\chi^2_1/(2N)$ term). A sampler cannot beat that floor with $N$ chains, so every curve below is drawn next to the
# same distance computed for $N$ exact samples (`exact_sample_floor`), and `kl_bias` predicts it from the cell
# probabilities alone. We also report total variation and an unbiased Gaussian-kernel MMD$^2$ against fresh exact
# samples (MMD$^2$ is zero in expectation for a perfect sampler, so it can come out slightly negative).

# %%
floors = chap.exact_floors(targets, cfg.compare_targets, cfg.grid_n, cfg.compare_chains,
                           cfg.floor_repeats, rng=ch.rng)
ch.table(["target", "measured floor", "predicted (kl_bias)", "(cells - 1)/(2N)"],
         chap.floor_rows(floors), caption=f"Grid {cfg.grid_n} x {cfg.grid_n}, "
         f"N = {cfg.compare_chains} exact samples, {cfg.floor_repeats} repeats:")

# %% [markdown]
# The measured floor agrees with the prediction, and is well below the naive $(B-1)/(2N)$ that counts empty cells
# too. Distances below the floor's band are noise, not progress.
#
# ### The samplers
#
# Each sampler gets settings scaled to the target's narrowest length scale $\ell$ (the standard deviation of one
# of the eight Gaussians, or the width of a moon; `chap.WIDTHS`, called `w` in the code), so the comparison is
# about the algorithms, not about lucky tuning:
#
# | sampler | update | settings |
# | --- | --- | --- |
# | RWMH {cite:p}`metropolis1953equation` | $x' = x + \tau\xi$, accepted with $\min(1, e^{E(x) - E(x')})$ | $\tau = 1.5\,\ell$ |
# | ULA | $x' = x - h\nabla E(x) + \sqrt{2h}\,\xi$ (eq. (3) with $\lambda = 2h$), never rejected | $h = 0.5\,\ell^2$ |
# | MALA {cite:p}`roberts1996exponential` | the ULA proposal with a Metropolis-Hastings correction | $h = 0.5\,\ell^2$ |
# | HMC {cite:p}`duane1987hybrid,neal2011mcmc` | $L = 5$ leapfrog steps of size $\eta$, unit mass, Metropolis on $\mathcal H(x, u) = E(x) + \lVert u\rVert^2/2$ | $\eta = 0.5\,\ell$ |
# | Langevin (A.7) | noise $\sigma = 0.005$, gradient clipped to $\pm 0.01$, step $h = 10$, exactly the paper's image settings | |
#
# All chains start from uniform noise over the target's bounding box, as the paper initialises its fresh chains,
# and every sampler sees the same starting points and the same number of steps. The distance is measured at
# several step counts along the way.

# %%
# chap.WIDTHS: each target's narrowest length scale w. The checkerboard is left out on
# purpose (edges blurred by only 0.05 make gradient samplers stiff): try adding it.
compare = {}
for name in cfg.compare_targets:
    compare[name] = chap.compare_samplers(
        targets[name], chap.WIDTHS[name], n_chains=cfg.compare_chains,
        checkpoints=cfg.compare_checkpoints, grid_n=cfg.grid_n, mmd_points=cfg.mmd_points,
        stuck_repeats=cfg.floor_repeats, rng=ch.rng)
    print(chap.compare_line(name, compare[name], cfg.compare_chains))

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
fig = chap.compare_figure(compare, floors)

# %% [markdown]
# The final samples of every sampler (red) over the exact density, and the same number of exact samples for
# reference:

# %%
fig = chap.final_samples_figure(compare, targets, cfg.landscape_grid)

# %%
ch.table(chap.COMPARE_HEADER, chap.compare_rows(compare, targets))
ch.metrics.update(chap.compare_metrics(compare, floors, cfg.compare_chains))

# %%
ch.show(chap.floor_notes(compare, floors))

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
# * ULA uses the same proposal as MALA but never rejects. At this step size ($h = 0.5\ell^2$) its stationary law is
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
# $$v_\text{paper} = \frac{(1-a)^2\, s^2}{1 - h/(2s^2)} = v_\text{ULA} - 2h.$$
#
# It is *narrower* than $s^2$ when $(1-a)^2 < 1 - a/2$, that is for $h < 3s^2/2$ (and exactly zero at $h = s^2$,
# where the gradient step lands on the mean), and *wider* beyond: in the table below, the step sizes up to 1.4 give
# a variance below 1 and $h = 1.8$ one above it. For small steps the same algorithm is thus biased in opposite
# directions depending on where its state is read off.
#
# We measure all three: chains start from exact samples of $\mathcal N(0, I)$ ($s = 1$), run a burn-in, and then the
# variance is averaged over all chains, both coordinates and the remaining steps.

# %%
t0 = ch.elapsed()[0]
bias = chap.ula_bias(cfg.bias_step_sizes, cfg.bias_chains, cfg.bias_burn_in,
                     cfg.bias_steps, rng=ch.rng, s=1.0)
print(f"{len(bias['h'])} step sizes x 3 samplers in {ch.elapsed()[0] - t0:.1f} s")
ch.table(chap.BIAS_HEADER, chap.bias_rows(bias))
ch.metrics["ula_bias"] = bias

# %%
fig = chap.bias_figure(bias)

# %%
ch.show(chap.bias_sentence(bias))

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
t0 = ch.elapsed()[0]
mix = chap.mode_mixing(cfg.mix_separations, cfg.mix_chains, cfg.mix_steps, rng=ch.rng,
                       width=0.5, box=5.0)
print(f"{len(cfg.mix_separations)} separations x 5 samplers x {cfg.mix_steps} steps "
      f"x {cfg.mix_chains} chains in {ch.elapsed()[0] - t0:.1f} s")
header, rows = chap.mixing_rows(mix)
ch.table(header, rows,
         caption=f"Weight of the left (lighter) mode after {cfg.mix_steps} steps:")
ch.metrics["mode_weights"] = mix

# %%
fig = chap.mixing_figure(mix)

# %% [markdown]
# The trajectories make the mechanism visible (drawn in the style of the paper's Fig. 14, paths over the energy
# landscape; a circle marks the start, a cross the end of the drawn segment). MALA chains, started two in each
# mode, on a close and a far pair of modes; top, the first 100 steps of two of them; below, the $x$ coordinate of
# all of them against the step number, over the whole run:

# %%
fig, crossed = chap.trajectory_figure(cfg.traj_separations, cfg.traj_chains,
                                      cfg.traj_steps, rng=ch.rng, width=0.5)

# %%
ch.show(chap.mixing_sentence(mix))

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
# $x \leftarrow x + \sigma\xi,\; x \leftarrow x - h\,\nabla E(x)$. Without clipping, a small-$h$ analysis (the
# {ref}`theory page <theory-paper-langevin>`) shows that at stationarity this samples approximately the tempered
# density $p_T(x) \propto e^{-E(x)/T}$ at the temperature
#
# $$T = \frac{\sigma^2}{2h},$$
#
# so only $T = 1$ targets $p$ itself; $T < 1$ sharpens it (towards gradient descent into the nearest minimum as
# $T \to 0$) and $T > 1$ flattens it. At finite $h$ the discretisation adds its own bias. On a Gaussian mode of
# width $s$, with $a = h/s^2$, the paper's update $x' = (1-a)(x + \sigma\xi)$ has the stationary variance
#
# $$v = \frac{(1-a)^2\,\sigma^2}{a\,(2-a)},$$
#
# which is $(1-a)^2 s^2/(1-a/2)$ at $T = 1$ (section 3): a step below $3s^2/2$ makes the modes too narrow even at the
# "right" temperature (a larger one makes them too wide), and a hotter $T$ can undo that. For the eight Gaussians
# $s = 0.25$, so $3s^2/2 \approx 0.094$, above every step size of the grid below.
#
# Appendix A.8 reports that very low noise gave poor results and that high noise
# explored many modes at first but then made training collapse, and recommends fixing $\sigma = 0.005$ and tuning the
# step size (10 to 100 for images in $[0, 1]$ with the gradient clipped to 0.01). Here we cannot see training, but we
# can see what the sampler does to a fixed energy. Each panel runs the paper's update (no clipping) on eight
# Gaussians from uniform noise; rows are step sizes, columns noise levels, titles give $T$ and the grid KL. The
# settings are chosen so that the diagonal has $T = 1$ (for the three demo step sizes $\sigma = \sqrt{2h}$ is one
# of the noise levels).

# %%
t0 = ch.elapsed()[0]
fig, panel = chap.noise_step_grid(
    targets["eight_gaussians"], cfg.panel_step_sizes, cfg.panel_noise_stds,
    n_chains=cfg.panel_chains, n_steps=cfg.panel_steps, plot_n=cfg.landscape_grid,
    score_n=cfg.grid_n, floor_repeats=cfg.floor_repeats, rng=ch.rng)
ch.metrics["noise_step_grid"] = panel
n_panels, floor = len(cfg.panel_step_sizes) * len(cfg.panel_noise_stds), panel["floor"]
print(f"{n_panels} panels in {ch.elapsed()[0] - t0:.1f} s; exact-sample floor with "
      f"{cfg.panel_chains} samples: {floor[0]:.3f} ± {floor[1]:.3f}")

# %%
fig = chap.temperature_figure(panel)
ch.show(chap.grid_sentence(panel))

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
# * The KL is lowest at $T = 1$ with a small step. Along the $T = 1$ diagonal it grows with $h$: the modes come out
#   too narrow (every step here is below $3s^2/2$), the discretisation bias computed above. In the largest-step row
#   a hotter $T$ compensates (the formula for $v$ puts the right width at $\sigma^2 = s^2 a(2-a)/(1-a)^2$), so a
#   decoupled step and noise can be tuned into a decent sampler without $T = 1$: tuning them separately, as the
#   paper does, is not wrong in itself, it just has no reason to land on $p$.
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
# needs a live Jupyter kernel; below it, a static copy shows what it draws at six of its settings. Things to try: hold $T = \sigma^2/2h$ at 1 and raise $h$ until the ring of modes blurs; set
# $\sigma = 0.005$ and watch the chains freeze at the mode centres; lengthen the run at high noise to see that more
# steps do not fix a wrong temperature.

# %%
explorer = chap.langevin_explorer(targets["eight_gaussians"], cfg.widget_chains,
                                  cfg.widget_max_steps, cfg.landscape_grid, ch.rng(13))
explorer

# %% [markdown]
# The control needs a live kernel; a static page shows only its sliders. Here is what it draws, from the same
# kind of uniform start and for 200 steps (its default), at six of its settings:

# %%
steps = min(200, cfg.widget_max_steps)
fig = chap.explorer_fallback(targets["eight_gaussians"], cfg.widget_chains, steps,
                             cfg.landscape_grid, ch.rng(13))

# %% [markdown]
# ## 7. Summary
#
# The numbers of this run, gathered in one place and written to `<out_dir>/01_sampling.json` for the results
# page:

# %%
ch.show(chap.summary(cfg.scale, ch.elapsed(), compare, floors, bias, mix,
                     cfg.compare_chains))
print("metrics written to", ch.save().name)

# %% [markdown]
# In short: on a known energy, the Metropolis-corrected samplers converge to the exact-sample floor, with HMC
# fastest per step but not per gradient; ULA converges to the wrong distribution by an amount that the closed
# form predicts; no local sampler moves weight between well-separated modes; and the paper's Langevin, with its
# decoupled noise, is best understood as a low-temperature sampler. The next chapters train energies whose
# density is *not* known, and use these samplers, mostly the last one, to do it.
