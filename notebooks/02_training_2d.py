# %% [markdown]
# # Training EBMs in 2D, and composing them
#
# Chapter 1 sampled from energies that were *given*. Here the energy is *learned*: a small MLP $E_\theta(x)$ is
# trained from samples of a 2D distribution with Algorithm 1 of {cite:t}`du2019implicit`, and because each target
# density is known exactly, the result can be scored, not just looked at. The plane is small enough to compute the
# partition function of eq. (2) by brute force on a grid, so the learned density
# $p_\theta(x) = e^{-E_\theta(x)/T} / Z_T$ (the tempered density $p_T$ of the
# {ref}`theory page <theory-temperature>` at the run's own temperature $T$; this page keeps writing $p_\theta$
# for it) is exactly normalised and compared with the truth in both KL directions.
#
# The chapter does six things:
#
# 1. trains on four targets with separated modes (eight Gaussians, two rings, two moons, a checkerboard) and measures
#    $\mathrm{KL}(p \,\|\, p_\theta)$, $\mathrm{KL}(p_\theta \,\|\, p)$ and the recovered mode weights, for the replay
#    buffer of section 3.2, short-run chains started from noise, and persistent chains (PCD)
#    {cite:p}`tieleman2008training`, at equal compute;
# 2. runs the ablations the paper argues for (noise level, step size, L2 coefficient, number of Langevin steps,
#    activation, spectral norm), each at the same number of gradient evaluations;
# 3. composes two energies by summing them (Fig. 14, a product of experts {cite:p}`hinton1999products`: AND) and
#    contrasts that with a mixture (OR);
# 4. refines samples by running more Langevin steps at test time (adaptive computation);
# 5. makes a run diverge on purpose and shows the trainer's guard rolling it back;
# 6. follows the learned density and the sampler's samples along training, where they can part ways.
#
# Every model, sampler and training loop lives in `ebmlib` (`ebmlib.chapters.training_2d` runs this chapter's
# experiments, fits and scores, `ebmlib.core.compose` composes, `ebmlib.core.train` is Algorithm 1); this notebook
# sets sizes, calls, and reads the numbers.

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
import ebmlib.chapters.training_2d as T
import ebmlib.core.compose as C
import ebmlib.core.energies as E
import ebmlib.core.metrics as M
from ebmlib.notebook.setup import start

ch = start("02_training_2d", scale, seed, out_dir, overrides)
cfg = ch.cfg
grid = M.Grid2D(cfg.data_range, cfg.grid_n)
base = dict(cfg.base_spec)
budget = T.grad_evals(base)    # gradient evaluations: iterations x (Langevin steps + 1)
print(ch.describe())
print(f"base spec: {T.full_spec(base)}")
print(f"every run costs {budget} energy-gradient evaluations; "
      f"sampler temperature T = {T.temperature(base):g}")

# %% [markdown]
# ## 1. Algorithm 1 in two dimensions
#
# Each iteration draws a batch $x^+$ from the data and as many negatives $x^-$ from $K$ Langevin steps,
#
# $$x^{k} = x^{k-1} + \sigma\,\xi^k - h\,\nabla_x E_\theta(x^{k-1} + \sigma\xi^k), \qquad \xi^k \sim \mathcal N(0, I),$$
#
# with step size $h$ and noise standard deviation $\sigma$ (the {ref}`theory page's notation <theory-notation>`; the
# base setting here does not clip the gradient), started from the replay buffer (95% of chains) or uniform noise
# (5%), and takes an Adam($\beta_1 = 0$) step on
#
# $$\mathcal L = \alpha\,\big(E_\theta(x^+)^2 + E_\theta(x^-)^2\big) + E_\theta(x^+) - E_\theta(x^-),$$
#
# which lowers the energy of data, raises that of negatives, and (the L2 term of section 3.3) keeps both near zero.
#
# **Temperature.** With the noise decoupled from the step, as in the paper's A.7, an unclipped chain is the
# unadjusted Langevin algorithm on $E_\theta / T$ with $T = \sigma^2 / 2h$
# ({ref}`theory page, section 6 <theory-paper-langevin>`). It samples $p_T \propto e^{-E_\theta/T}$ only
# approximately: for steps small on the scale of the energy's curvature ($h\,\lVert \nabla_x^2 E_\theta \rVert \ll 1$),
# without clipping, and once the chain is stationary, whereas the chains of training run $K$ steps at a time,
# continued through the buffer. So $p_T$ is the density a trained model is read as, not one its training chains
# are shown to sample. Because the L2 term keeps energies of order one, $T$ sets how peaked $p_T$ can be: the
# paper's image setting ($h = 10$, $\sigma = 0.005$) is $T \approx 10^{-6}$. Here the base setting ties
# $\sigma = \sqrt{2h}$ so that $T = 1$ and $p_\theta = e^{-E_\theta}/Z(\theta)$; the noise ablation below changes
# $T$, and every score uses the run's own $T$. The network is a swish MLP whose sizes are printed above; chains live
# on $[-4, 4]^2$.

# %% [markdown]
# ## 2. Four targets, three ways to start the chains
#
# For each target the same network is trained three times with the same number of iterations and Langevin steps
# (so the same number of gradient evaluations): negatives from the **replay buffer** (section 3.2), from
# **short-run chains started at uniform noise** every iteration, and from **persistent chains** (PCD, one set of
# chains carried over between iterations, never restarted). The scores:
#
# * $\mathrm{KL}(p\,\|\,p_\theta)$ (mass the model misses) and $\mathrm{KL}(p_\theta\,\|\,p)$ (mass the model puts where
#   the data has none), both between grid-normalised densities, so neither depends on a sampler;
# * the grid KL of long-run model samples (from uniform noise) against $p$, with the floor that exact samples of the
#   same size reach;
# * the mode weights $p_\theta$ gives each mixture component, and their total-variation error against the truth.

# %%
targets = {name: E.toy_2d(name) for name in cfg.targets}
cache = {}    # fits of identical specs are shared (the ablations reuse the baseline fit)
t0 = ch.elapsed()[0]
fits = T.compare_inits(targets, base, cfg.inits, grid=grid, n_samples=cfg.n_samples,
                       sample_steps=cfg.sample_steps, seeds=cfg.seeds, cache=cache)
floors = T.sample_floors(targets, grid, cfg.n_samples, cfg.floor_repeats, rng=ch.rng)
print(f"{len(cfg.targets) * len(cfg.inits) * len(cfg.seeds)} runs in "
      f"{ch.elapsed()[0] - t0:.0f} s")

# %%
fig = T.overview_figure(targets, fits, grid)

# %% [markdown]
# The training curves below are the mean energies of each batch of data and of negatives. Early on one expects the
# gap $E(x^-) - E(x^+)$ to be large: the model has found where the data is and the negatives have not caught up. As
# the negatives come to look like data the two curves should meet, which is what the maximum-likelihood gradient
# (eq. (8)) asks for: at the optimum the data and the model's samples are indistinguishable to $E_\theta$. The
# sentence under the figure says on which targets this run gets there.

# %%
fig = T.energy_curves_figure(fits)
ch.metrics["energy_gap"] = T.energy_gaps(fits)
ch.show(T.gap_sentence(ch.metrics["energy_gap"]))

# %% [markdown]
# ### The KL table
#
# Each score is the mean ± standard deviation over the preset's seeds (the network's initial weights, the data
# drawn and the chains' noise all change with the seed); the first seed's run is the one the pictures show.

# %%
kl_table = T.kl_summary(fits, cfg.inits)
ch.metrics["kl_table"] = kl_table
ch.metrics["sample_kl_floor"] = {n: {"mean": m, "std": s} for n, (m, s) in floors.items()}
ch.table(T.KL_HEADER, T.kl_rows(targets, kl_table, floors))

# %%
text, ch.metrics["replay_wins"] = T.replay_verdict(kl_table)
ch.show(text)

# %% [markdown]
# Two things to read in the table besides the winner. Short-run chains from noise are trained to *produce samples
# in $K$ steps*; nothing makes $e^{-E_\theta}$ itself the data density, and where its density is off (often in the
# mode weights, or in mass between the modes) the sample KL can still look fine. And no local sampler moves mass
# between well separated modes at $T = 1$ (chapter 1): with the buffer, the negatives' share of each mode is
# inherited from history and corrected only through the 5% uniform restarts, slowly; PCD never restarts its chains,
# so its shares move only as far as its chains cross between modes.

# %% [markdown]
# ## 3. Ablations at equal compute
#
# All variants below change one setting of the base run on one target and keep the number of energy-gradient
# evaluations fixed. For the number of Langevin steps $K$ this means fewer iterations for larger $K$. Every variant
# runs with the preset's seeds (three at demo scale); the table gives mean ± standard deviation over them, and each
# claim below says whether its best and worst variants differ by more than their seeds' spread.

# %%
t0 = ch.elapsed()[0]
abl = T.run_ablations(E.toy_2d(cfg.ablation_target), base, cfg.ablations, budget=budget,
                      grid=grid, n_samples=cfg.n_samples, sample_steps=cfg.sample_steps,
                      seeds=cfg.seeds, cache=cache)
print(f"ablations on {cfg.ablation_target}: {ch.elapsed()[0] - t0:.0f} s")
ch.metrics["ablations"] = abl
ch.table(T.ABLATION_HEADER, T.ablation_rows(abl))

# %%
fig = T.ablation_figure(abl)

# %%
ch.metrics["ablation_claims"] = T.ablation_claims(abl)
ch.show("\n".join(f"* {c}" for c in ch.metrics["ablation_claims"]))

# %% [markdown]
# ## 4. Composition: AND is a sum, OR is a log-sum-exp (Fig. 14)
#
# Two energies can be combined without retraining. Their **sum** $E_A + E_B$ is a product of experts,
# $p_{A\wedge B} \propto p_A\,p_B$: a point is likely only where *both* densities are high. The **mixture**
# $-\log(\tfrac12 e^{-E_A} + \tfrac12 e^{-E_B})$ is likely wherever *either* is (the
# {doc}`theory page <../book/theory>`, section 2). The paper's section 6 samples the sum "by undergoing a Langevin
# dynamic step sequentially from each model"; `ebmlib.core.compose.sequential_langevin` does that, splitting
# the noise between the experts so that a round of steps samples the product at the same temperature as one
# Langevin step on the sum.
#
# First with two analytic energies, a ring (A) and a vertical band (B), so that every density is exact. The
# panels show the energies with a few sampling trajectories from the same starting points.

# %%
ring, band = T.analytic_experts()
step = T.composition_step(base)
traces = T.composition_traces(ring.energy, band.energy, cfg.traj_chains, cfg.traj_steps,
                              step, cfg.data_range, generator=ch.rng(2))
fig = T.trace_figure(traces, grid, cfg.traj_chains)

# %%
x0 = T.uniform_start(cfg.compose_chains, cfg.data_range, ch.rng(3))
samples = T.and_or_samples([ring.energy, band.energy], x0, cfg.compose_steps, step,
                           cfg.data_range, generator=ch.rng(4))
cells, compose = T.analytic_composition(ring, band, samples, grid)
fig = T.composition_figure(cells, samples, grid)
ch.table(*T.score_rows(compose))
ch.metrics["composition_analytic"] = compose

# %% [markdown]
# The same with **learned** energies: the replay-buffer models of two targets from section 2 are summed, with no
# further training, and their samples are scored against the exact product of the two *true* densities. The
# learned product density (the summed energies, normalised on the grid) is compared with it too.

# %%
pair = cfg.compose_learned
experts = [T.scaled_energy(fits[name]["replay"]) for name in pair]
learned_and = T.learned_cells(C.SumEnergy(*experts), grid)
learned_samples = T.and_or_samples(experts, x0, cfg.compose_steps, step, cfg.data_range,
                                   generator=ch.rng(5))
learned = T.learned_composition(targets[pair[0]], targets[pair[1]], learned_samples,
                                learned_and, grid)
fig = T.learned_composition_figure(pair, [fits[n]["replay"] for n in pair],
                                   [targets[n] for n in pair], learned_and,
                                   learned_samples["AND"], grid)
ch.table(["measure", "nats"], [[k, v] for k, v in learned.items()])
ch.metrics["composition_learned"] = {"pair": list(pair), **learned}
ch.show(T.composition_sentence(compose, learned))

# %% [markdown]
# ## 5. Adaptive computation: more steps at test time
#
# Sampling an EBM is an iterative optimisation, so a sample can be refined by simply running more Langevin steps.
# Below, chains start from uniform noise and the grid KL of their samples to the true density is read after each
# number of steps, for the replay-buffer and the noise-initialised models. The dashed line is the floor of exact
# samples of the same size.

# %%
refine, refine_floors = T.refinement(fits, targets, grid, n_chains=cfg.refine_chains,
                                     checkpoints=cfg.refine_checkpoints,
                                     floor_repeats=cfg.floor_repeats, rng=ch.rng)
fig = T.refinement_figure(refine, refine_floors, base["n_steps"])
ch.metrics["adaptive_computation"] = refine
text, worse = T.refinement_lines(refine, base["n_steps"])
ch.metrics["adaptive_worse_after_more_steps"] = worse
ch.show(text)

# %% [markdown]
# ## 6. What goes wrong: a run that diverges on purpose
#
# A diverging EBM shows itself in a few typical ways: energies that spike or saturate, data and negative energies
# that run away together while their difference stays small, samples that turn into noise. Section 3.3 gives the
# reason for the L2 term: without it "the actual values would fluctuate to numerically unstable values". So we remove
# it ($\alpha = 0$) and raise the learning rate (the settings are printed below). The same run is made twice: once
# with the guard switched off (no bound on $|E|$), and once with `max_abs_energy` set, so that the trainer reverts to
# its last verified snapshot and halves the learning rate whenever a batch's $|E|$ crosses the bound (the
# stabilisation advice of A.8). The rollback events come from the trainer's own log.

# %%
div_target = E.toy_2d(cfg.diverge_target)
print(f"{cfg.diverge_target}, {cfg.diverge_iters} iterations, with {cfg.diverge_spec}")
runs = T.divergence_runs(div_target, base, cfg.diverge_spec, cfg.diverge_iters)
fig = T.divergence_figure(runs, grid, cfg.diverge_spec["max_abs_energy"])
div = T.divergence_summary(runs, div_target, grid)
ch.metrics["divergence"] = div
base_kl = kl_table.get(cfg.diverge_target, {}).get("replay", {}).get("kl_true_learned")
ch.show(T.divergence_sentence(div, cfg.diverge_target, base_kl))

# %% [markdown]
# Reading the left panel: the energies do not drift slowly, they *run away*: once the data and negative energies are
# free of the L2 term, a large update can shift the whole surface, the gap $E(x^-) - E(x^+)$ grows with them but
# stays below the energies themselves while both run off together (the sentence above gives the final values), and
# from then on nothing in the loss brings them back (the loss only sees their difference). The guard cannot tell a
# good spike from a bad one; it only bounds $|E|$, so its threshold must sit well above the energies a healthy run
# reaches and its snapshots must be recent enough that reverting loses little.

# %% [markdown]
# ## 7. Density against samples along training
#
# The chapter scores two things that can disagree: the grid-normalised density $p_\theta \propto e^{-E_\theta/T}$
# and what the sampler draws from it. Here one run per target is read at several lengths (no learning-rate
# anneal, so every point lies on one trajectory), on the four targets above and two harder ones: a thin spiral
# (60 Gaussians along 1.75 turns) and a 5 x 5 grid of narrow Gaussians. At each point we measure the density's
# $\mathrm{KL}(p \,\|\, p_\theta)$, the samples' $\mathrm{KL}(q \,\|\, p)$ after the chapter's 500 steps from noise,
# and $\mathrm{KL}(q \,\|\, p_\theta)$: how far the sampler is from *its own model*. If the last grows, the samples
# have stopped describing the density. At the last point two checks tell why: ten times longer chains (which
# would help if the chains had not mixed yet) and MALA, the same proposal with a Metropolis test (which helps
# if the step is too large for the energy's curvature, ULA's bias; theory page, section 6).

# %%
targets_d = {name: E.toy_2d(name) for name in cfg.density_targets}
sizes = (cfg.density_chains, cfg.density_steps, cfg.density_long_steps)
density = T.density_runs(targets_d, base, cfg.density_checkpoints, grid, *sizes, ch.seed)
ch.metrics["density_vs_samples"] = density
fig = T.density_figure(density)

# %%
header, rows = T.density_check_rows(density)
ch.table(header, rows, caption="At the last checkpoint, per sampler and number of steps.")
ch.show(T.density_sentence(density))

# %% [markdown]
# Two more things the table shows. Where MALA's acceptance is near one, the step suits the energy and the
# Metropolis test changes little about the samples' distance to the model; their distance to the *truth* can
# even grow, because the model was trained against the sampler's negatives, so it is the pair (energy, sampler)
# that was fitted to the data, not the energy alone. Where the acceptance is low, the trained energy has
# become too sharp for the step and the uncorrected sampler no longer draws from it at any chain length.
#
# A sampler that leaves its own model also corrupts training: Algorithm 1's negatives come from the same
# sampler, so the density is pushed away from wherever the biased chains pile up, which is why the density's
# KL can worsen together with the samples'. The recipe's check is cheap: run the evaluation chains once with
# MALA's Metropolis test on the same proposal and compare; an acceptance rate far below one, or samples that
# move when the test is switched on, says the step is too large for the trained energy. The cure is then a
# smaller step (with more steps) or the Metropolis test itself, not longer chains.

# %% [markdown]
# ## 8. Summary

# %%
ch.metrics["budget_grad_evals"] = budget
path = ch.save()
caption = (f"**Scale `{cfg.scale}`**, whole notebook {ch.elapsed()[0]:.0f} s; "
           f"metrics written to `{path.name}`.\n\n"
           "KL(p ‖ p_θ) / KL(p_θ ‖ p) in nats, at equal compute:")
ch.table(["target", *cfg.inits], T.summary_rows(kl_table, cfg.inits), caption=caption)

# %% [markdown]
# In short: Algorithm 1 learns every one of these 2D densities well enough to be scored against the truth; the
# tables above say, for this run, where the replay buffer beats restarts from noise and persistent chains and where
# it does not, which of the paper's tips hold at this scale, that summing two exact energies samples their product
# while a log-sum-exp samples their union (and how far learned energies are from that), that test-time steps refine
# samples up to the point the model itself allows, and that a run without the L2 term can be kept alive by rolling it
# back. The next chapters move from the plane to images, where none of these exact scores exist any more.
