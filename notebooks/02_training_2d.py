# %% [markdown]
# # Training EBMs in 2D, and composing them
#
# Chapter 1 sampled from energies that were *given*. Here the energy is *learned*: a small MLP $E_\theta(x)$ is
# trained from samples of a 2D distribution with Algorithm 1 of Du and Mordatch (2019), and because each target
# density is known exactly, the result can be scored, not just looked at. The plane is small enough to compute the
# partition function of eq. (2) by brute force on a grid, so the learned density
# $p_\theta(x) = e^{-E_\theta(x)/T} / Z_\theta$ is exactly normalised and compared with the truth in both KL
# directions.
#
# The chapter does five things:
#
# 1. trains on four targets with separated modes (eight Gaussians, two rings, two moons, a checkerboard) and measures
#    $\mathrm{KL}(p \,\|\, p_\theta)$, $\mathrm{KL}(p_\theta \,\|\, p)$ and the recovered mode weights, for the replay
#    buffer of section 3.2, short-run chains started from noise, and persistent chains (PCD), at equal compute;
# 2. runs the ablations the paper argues for (noise level, step size, L2 coefficient, number of Langevin steps,
#    activation, spectral norm), each at the same number of gradient evaluations;
# 3. composes two energies by summing them (Fig. 14, a product of experts: AND) and contrasts that with a mixture (OR);
# 4. refines samples by running more Langevin steps at test time (adaptive computation);
# 5. makes a run diverge on purpose and shows the trainer's guard rolling it back.
#
# Every model, sampler and training loop lives in `ebmlib` (`ebmlib.chapters.training_2d` fits and scores, `ebmlib.core.compose`
# composes, `ebmlib.core.train` is Algorithm 1); this notebook sets sizes, calls, and reads the numbers.

# %% tags=["parameters"]
scale = None        # "smoke" | "demo" | "paper"; None: $EBMLIB_SCALE, else "demo"
seed = 0            # 0 gives the committed outputs (and uses the shipped checkpoints)
out_dir = None      # metrics JSON and trained models; None: $EBMLIB_OUT, else "_results"
overrides = {}      # preset values to replace, e.g. {"n_test": 100}; also $EBMLIB_SET (JSON)

# %%
import math
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

import ebmlib
import ebmlib.core.compose as C
import ebmlib.core.energies as E
import ebmlib.core.metrics as M
import ebmlib.notebook.plotting as P
import ebmlib.chapters.training_2d as T
from ebmlib.notebook.results import save_metrics
from ebmlib.notebook.setup import start
from ebmlib.notebook.tables import markdown_table

ch = start("02_training_2d", scale, seed, out_dir, overrides)
cfg, scale, out_dir = ch.cfg, ch.scale, ch.out_dir
# One thread: on a shared 2-core machine a small 2D MLP trains several times faster on one thread than on two
# contending ones (measured while writing this chapter); raise cfg.threads on a bigger machine.
torch.manual_seed(0)
plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9})
t_start = time.time()
metrics = {}          # everything worth quoting goes here and into <out_dir>/02_training_2d.json
grid = M.Grid2D(cfg.data_range, cfg.grid_n)
base = dict(cfg.base_spec)
budget = T.grad_evals(base)    # gradient evaluations per run: iterations x (Langevin steps + 1)
print(f"scale = {cfg.scale}, python {sys.executable}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
print(f"base spec: {T.full_spec(base)}")
print(f"every run costs {budget} energy-gradient evaluations; sampler temperature T = {T.temperature(base):g}")

# %% [markdown]
# ## 1. Algorithm 1 in two dimensions
#
# Each iteration draws a batch $x^+$ from the data and as many negatives $x^-$ from $K$ Langevin steps,
#
# $$x^{k} = x^{k-1} + \sigma\,\xi^k - \lambda\,\nabla_x E_\theta(x^{k-1} + \sigma\xi^k), \qquad \xi^k \sim \mathcal N(0, I),$$
#
# started from the replay buffer (95% of chains) or uniform noise (5%), and takes an Adam($\beta_1 = 0$) step on
#
# $$\mathcal L = \alpha\,\big(E_\theta(x^+)^2 + E_\theta(x^-)^2\big) + E_\theta(x^+) - E_\theta(x^-),$$
#
# which lowers the energy of data, raises that of negatives, and (the L2 term of section 3.3) keeps both near zero.
#
# **Temperature.** With the noise decoupled from the step, as in the paper's A.7, the chain samples
# $e^{-E_\theta/T}$ with $T = \sigma^2 / 2\lambda$, and that is the density the trained model stands for. Because
# the L2 term keeps energies of order one, $T$ sets how peaked $p_\theta$ can be: the paper's image setting
# ($\lambda = 10$, $\sigma = 0.005$) is $T \approx 10^{-6}$. Here the base setting ties $\sigma = \sqrt{2\lambda}$
# so that $T = 1$ and $p_\theta = e^{-E_\theta}/Z_\theta$; the noise ablation below changes $T$, and every score uses
# the run's own $T$. The network is a swish MLP whose sizes are printed above; chains live on $[-4, 4]^2$.

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
cache = {}            # fits of identical specs are shared (the ablations reuse the baseline fit)
fits = {}
t0 = time.time()
for name, target in targets.items():
    runs = T.ablate(target, base, {init: {"init": init} for init in cfg.inits}, grid=grid, n_samples=cfg.n_samples,
                    sample_steps=cfg.sample_steps, seeds=cfg.seeds, cache=cache)
    fits[name] = {init: runs[init][0] for init in cfg.inits}     # first seed for the pictures
    fits[name]["_all"] = runs
floors = {name: M.exact_sample_floor(t, grid, cfg.n_samples, cfg.floor_repeats, generator=torch.Generator().manual_seed(1))
          for name, t in targets.items()}
print(f"{len(cfg.targets) * len(cfg.inits) * len(cfg.seeds)} runs in {time.time() - t0:.0f} s")

# %%
cols = ["true density p", "learned energy E/T (replay)", "learned density (replay)", "samples (replay)",
        "learned density (noise init)", "learned density (PCD)"]
fig, axes = P.panel_grid(len(targets), len(cols), size=2.0)
axes = np.atleast_2d(axes)
for i, (name, target) in enumerate(targets.items()):
    f = fits[name]
    P.plot_density(target, grid, axes[i, 0])
    P.plot_energy(lambda x, m=f["replay"].model, t=f["replay"].temperature: m(x) / t, grid, axes[i, 1])
    P.plot_density(f["replay"].log_cells, grid, axes[i, 2])
    P.plot_samples(f["replay"].samples, axes[i, 3], grid, s=1.0, max_points=1500)
    P.plot_density(f["noise"].log_cells, grid, axes[i, 4])
    P.plot_density(f["persistent"].log_cells, grid, axes[i, 5])
    axes[i, 0].set_ylabel(name)
for j, c in enumerate(cols):
    axes[0, j].set_title(c, fontsize=8)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
# The training curves below are the mean energies of each batch of data and of negatives. Early on the gap
# $E(x^-) - E(x^+)$ is large: the model has found where the data is and the negatives have not caught up. As the
# negatives come to look like data the two curves meet, which is what the maximum-likelihood gradient (eq. (8))
# asks for: at the optimum the data and the model's samples are indistinguishable to $E_\theta$.

# %%
fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 2.6), squeeze=False)
def smooth(v, w=25):
    v = np.asarray(v, dtype=float)
    w = max(1, min(w, len(v)))
    return np.convolve(v, np.ones(w) / w, mode="valid")
gaps = {}
for ax, name in zip(axes[0], targets):
    h = [r for r in fits[name]["replay"].history if "event" not in r]
    for key, col in (("e_pos", "C0"), ("e_neg", "C3")):
        ax.plot([r[key] for r in h], color=col, alpha=0.25, lw=0.6)
        ax.plot(np.arange(len(smooth([r[key] for r in h]))) + 12, smooth([r[key] for r in h]), color=col,
                label="E(data)" if key == "e_pos" else "E(negatives)")
    n10 = max(1, len(h) // 10)
    gaps[name] = {"first_10pct": float(np.mean([r["e_neg"] - r["e_pos"] for r in h[:n10]])),
                  "last_10pct": float(np.mean([r["e_neg"] - r["e_pos"] for r in h[-n10:]]))}
    ax.set_title(f"{name} (replay)", fontsize=9); ax.set_xlabel("iteration")
axes[0, 0].set_ylabel("mean energy"); axes[0, 0].legend(fontsize=7)
fig.tight_layout()
metrics["energy_gap"] = gaps
display(Markdown("Mean gap E(negatives) - E(data) over the first and last tenth of training: " + "; ".join(
    f"{n} {g['first_10pct']:+.3f} -> {g['last_10pct']:+.3f}" for n, g in gaps.items()) + "."))

# %% [markdown]
# ### The KL table

# %%
rows, kl_table = [], {}
for name, target in targets.items():
    kl_table[name] = {}
    for init in cfg.inits:
        runs = fits[name]["_all"][init]
        s = {k: T.mean_score(runs, k) for k in ("kl_true_learned", "kl_learned_true", "sample_kl", "mode_error")}
        s["mode_weights"] = runs[0].summary()["mode_weights"]
        kl_table[name][init] = s
        w = ", ".join(f"{v:.2f}" for v in s["mode_weights"])
        rows.append([name, init, s["kl_true_learned"], s["kl_learned_true"], s["sample_kl"], s["mode_error"], w])
    m, sd = floors[name]
    true_w = ", ".join(f"{v:.2f}" for v in target.weights.tolist())
    rows.append([name, "*exact samples / truth*", "0", "0", f"{m:.3f} ± {sd:.3f}", "0", true_w])
metrics["kl_table"] = kl_table
metrics["sample_kl_floor"] = {n: {"mean": m, "std": sd} for n, (m, sd) in floors.items()}
display(Markdown(markdown_table(["target", "negatives from", "KL(p ‖ p_θ)", "KL(p_θ ‖ p)", "sample KL",
                                   "mode TV error", "mode weights"], rows)))


# %%
def wins(a, b, key):
    return [n for n in targets if kl_table[n][a][key] < kl_table[n][b][key]]
both = {b: [n for n in targets if all(kl_table[n]["replay"][k] < kl_table[n][b][k]
                                      for k in ("kl_true_learned", "kl_learned_true"))] for b in ("noise", "persistent")}
w_fwd, w_rev = wins("replay", "noise", "kl_true_learned"), wins("replay", "noise", "kl_learned_true")
n = len(targets)
verdict = ("supports" if len(both["noise"]) > n / 2 else "does not clearly support")
text = (f"**Replay buffer vs short-run chains from noise.** At equal compute the replay-buffer model has the lower "
        f"KL(p ‖ p_θ) on {len(w_fwd)} of {n} targets ({', '.join(w_fwd) or 'none'}) and the lower KL(p_θ ‖ p) on "
        f"{len(w_rev)} of {n} ({', '.join(w_rev) or 'none'}); it is better in both directions on "
        f"{len(both['noise'])} of {n}. This run therefore {verdict} section 3.2's claim that the buffer improves on "
        f"restarting from noise")
lose = [t for t in targets if t not in both["noise"]]
text += (f"; where it does not win in both directions ({', '.join(lose)}), the table above shows by how much." if lose else ".")
mode_wins = [t for t in targets if kl_table[t]["replay"]["mode_error"] < kl_table[t]["noise"]["mode_error"]]
text += (f" The replay model also recovers the mode weights better (lower total-variation error) on {len(mode_wins)} of "
         f"{n} targets ({', '.join(mode_wins) or 'none'}).")
text += (f" **Replay vs PCD** (A.3 reports PCD clearly worse on MNIST): the buffer wins in both directions on "
         f"{len(both['persistent'])} of {n} targets here.")
metrics["replay_wins"] = {"mode_weights_vs_noise": mode_wins, "vs_noise_both": both["noise"], "vs_noise_fwd": w_fwd, "vs_noise_rev": w_rev,
                          "vs_pcd_both": both["persistent"]}
display(Markdown(text))

# %% [markdown]
# Two things to read in the table besides the winner. Short-run chains from noise are trained to *produce samples
# in $K$ steps*; nothing makes $e^{-E_\theta}$ itself the data density, and where its density is off (often in the
# mode weights, or in mass between the modes) the sample KL can still look fine. And no local sampler moves mass
# between well separated modes at $T = 1$ (chapter 1): with the buffer or PCD the negatives' share of each mode is
# inherited from history, so mode weights are learned only through the 5% uniform restarts and slowly.

# %% [markdown]
# ## 3. Ablations at equal compute
#
# All variants below change one setting of the base run on one target and keep the number of energy-gradient
# evaluations fixed. For the number of Langevin steps $K$ this means fewer iterations for larger $K$. A single seed per
# variant at demo scale: differences of a few hundredths of a nat are within run-to-run noise, so the text only
# calls a difference a difference when it is large relative to the spread of the group.

# %%
abl_target = E.toy_2d(cfg.ablation_target)
t0 = time.time()
ablations = {group: T.ablate(abl_target, base, variants, budget=budget, grid=grid, n_samples=cfg.n_samples,
                             sample_steps=cfg.sample_steps, seeds=cfg.seeds, cache=cache)
             for group, variants in cfg.ablations.items()}
print(f"ablations on {cfg.ablation_target}: {time.time() - t0:.0f} s")
abl_metrics, rows = {}, []
for group, runs in ablations.items():
    abl_metrics[group] = {}
    for label, fl in runs.items():
        s = {k: T.mean_score(fl, k) for k in ("kl_true_learned", "kl_learned_true", "sample_kl", "mode_error",
                                               "temperature", "iters", "grad_evals", "rollbacks")}
        abl_metrics[group][label] = s
        rows.append([group, label, f"{s['temperature']:.3g}", int(s["iters"]), int(s["grad_evals"]),
                     s["kl_true_learned"], s["kl_learned_true"], s["sample_kl"], s["mode_error"], int(s["rollbacks"])])
metrics["ablations"] = abl_metrics
display(Markdown(markdown_table(["ablation", "variant", "T", "iterations", "grad evals", "KL(p ‖ p_θ)",
                                   "KL(p_θ ‖ p)", "sample KL", "mode TV", "rollbacks"], rows)))

# %%
fig, axes = plt.subplots(1, len(ablations), figsize=(2.6 * len(ablations), 2.9), squeeze=False)
for ax, (group, res) in zip(axes[0], abl_metrics.items()):
    labels = list(res)
    x = np.arange(len(labels))
    for dx, key, lab in ((-0.27, "kl_true_learned", "KL(p ‖ p_θ)"), (0.0, "kl_learned_true", "KL(p_θ ‖ p)"),
                         (0.27, "sample_kl", "sample KL")):
        ax.bar(x + dx, [res[l][key] for l in labels], 0.27, label=lab)
    ax.set_yscale("log")
    ax.set_xticks(x); ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_title(group, fontsize=8)
axes[0, 0].set_ylabel("nats (grid, log scale)"); axes[0, 0].legend(fontsize=7)
fig.tight_layout()


# %%
def score(r):      # one number per variant: the two KL directions added (symmetrised KL)
    return r["kl_true_learned"] + r["kl_learned_true"]
def get(group, label):
    return abl_metrics.get(group, {}).get(label)
claims = []
spreads = {g: max(score(r) for r in res.values()) - min(score(r) for r in res.values()) for g, res in abl_metrics.items()}
noise = abl_metrics.get("Langevin noise (A.8)", {})
ref = get("Langevin noise (A.8)", "noise x1 (T = 1)")
if ref and len(noise) > 1:
    lows = [l for l in noise if "x0." in l]
    highs = [l for l in noise if l.startswith("noise x") and l[7:8].isdigit() and float(l[7:].split()[0]) > 1]
    for l in lows:
        ok = score(noise[l]) > score(ref)
        claims.append(f"*A.8, too little noise gives poor results*: {l} scores {score(noise[l]):.2f} nats (KL sum) "
                      f"against {score(ref):.2f} at T = 1, so this run {'supports' if ok else 'does not support'} it.")
    for l in highs:
        r = noise[l]
        collapsed = r["rollbacks"] > 0 or score(r) > 2 * score(ref) or r["sample_kl"] > 2 * ref["sample_kl"]
        claims.append(f"*A.8, too much noise collapses training through failure of the sampler*: {l} "
                      f"(T = {r['temperature']:.2g}) has a density score of {score(r):.2f} nats against {score(ref):.2f} at "
                      f"T = 1, a sample KL of {r['sample_kl']:.2f} against {ref['sample_kl']:.2f}, and "
                      f"{int(r['rollbacks'])} rollbacks: " + ("consistent with the claim in this run" if collapsed else
                      "no sign of it in this run") + (" (the learned density is fine but the hot sampler's samples are "
                      "not)" if collapsed and score(r) <= 2 * score(ref) else "") + ".")
def verdict(group, res, best, worst):
    labels = list(res)
    if group.startswith("Langevin steps"):
        ok = best == labels[-1]
        return f"{'supported' if ok else 'not supported'}: the best run had {best} (at equal compute, so fewer iterations for larger K)"
    if group.startswith("activation"):
        ok = score(res[worst]) <= 2 * score(res[best])
        return (f"{'supported' if ok else 'not supported'}: the worst activation is {'within' if ok else 'more than'} "
                f"a factor 2 of the best; Swish {'is' if best == 'swish' else 'is not'} the best here")
    if group.startswith("spectral"):
        ok = score(res["SN"]) < score(res["no SN"])
        return f"{'supported' if ok else 'not supported'} in this run"
    return "see the spread comparison below"
for group, paper in (("step size (A.8)", "training is most sensitive to the MCMC step size"),
                     ("L2 coefficient alpha (3.3, A.4)", "results are insensitive to the L2 coefficient across orders of magnitude"),
                     ("activation (A.8)", "ReLU, LeakyReLU and Swish all work, Swish best"),
                     ("spectral norm (3.3)", "spectral normalisation helps"),
                     ("Langevin steps K (equal compute)", "more sampling steps per negative help")):
    res = abl_metrics.get(group)
    if not res:
        continue
    best = min(res, key=lambda l: score(res[l])); worst = max(res, key=lambda l: score(res[l]))
    claims.append(f"*{paper}* ({group}): best {best} ({score(res[best]):.2f}), worst {worst} ({score(res[worst]):.2f}); "
                  f"spread {spreads[group]:.2f} nats against {np.median(list(spreads.values())):.2f} for the median group; "
                  + verdict(group, res, best, worst) + ".")
if "step size (A.8)" in spreads:
    top = max(spreads, key=spreads.get)
    claims.append(f"The largest spread is in *{top}*; the paper's claim that the step size matters most is "
                  f"{'supported' if top == 'step size (A.8)' else 'not borne out'} by this run.")
if "L2 coefficient alpha (3.3, A.4)" in abl_metrics:
    a = abl_metrics["L2 coefficient alpha (3.3, A.4)"]
    claims.append("Insensitivity to alpha (A.4) " + ("holds" if spreads["L2 coefficient alpha (3.3, A.4)"] <= np.median(list(spreads.values()))
                  else "does not hold") + " here: its spread is " + ("at or below" if spreads["L2 coefficient alpha (3.3, A.4)"] <= np.median(list(spreads.values())) else "above")
                  + " the median group's.")
sn = abl_metrics.get("spectral norm (3.3)", {})
if "SN" in sn and "no SN" in sn:
    claims.append(f"Spectral norm: {score(sn['SN']):.2f} with, {score(sn['no SN']):.2f} without; "
                  + ("it helps in this run." if score(sn["SN"]) < score(sn["no SN"]) else
                     "it does not help this small MLP at this budget (a plausible reason: bounding every layer's "
                     "Lipschitz constant also bounds how steep the energy walls between modes can become)."))
metrics["ablation_claims"] = claims
display(Markdown("\n".join(f"* {c}" for c in claims)))

# %% [markdown]
# ## 4. Composition: AND is a sum, OR is a log-sum-exp (Fig. 14)
#
# Two energies can be combined without retraining. Their **sum** $E_A + E_B$ is a product of experts,
# $p_{A\wedge B} \propto p_A\,p_B$: a point is likely only where *both* densities are high. The **mixture**
# $-\log(\tfrac12 e^{-E_A} + \tfrac12 e^{-E_B})$ is likely wherever *either* is. Section 6 samples the sum "by
# undergoing a Langevin step sequentially from each model"; `ebmlib.core.compose.sequential_langevin` does that, splitting
# the noise between the experts so that a round of steps samples the product at the same temperature as one
# Langevin step on the sum.
#
# First with two analytic energies, a ring (A) and a vertical band (B), so that every density is exact. The
# panels show the energies with a few sampling trajectories from the same starting points.

# %%
ring = E.Arc(radius=2.0, width=0.2)
band = E.Gaussian((0.0, 0.0), ((0.1, 0.0), (0.0, 4.0)))
A, B = ring.energy, band.energy
AND, OR = C.SumEnergy(A, B), C.MixtureEnergy(A, B)
step = base.get("step_size", T.BASE_SPEC["step_size"]) / 3
gen = torch.Generator().manual_seed(2)
x0 = grid.bounds[0][0] + (grid.bounds[0][1] - grid.bounds[0][0]) * torch.rand(cfg.traj_chains, 2, generator=gen)
traces = {
    "energy A (ring)": C.sequential_langevin([A], x0, cfg.traj_steps, step, trace=True, clamp=cfg.data_range, generator=gen).trace,
    "energy B (band)": C.sequential_langevin([B], x0, cfg.traj_steps, step, trace=True, clamp=cfg.data_range, generator=gen).trace,
    "energy A + B (AND)": C.sequential_langevin([A, B], x0, cfg.traj_steps, step, trace=True, clamp=cfg.data_range, generator=gen).trace,
}
fig, axes = plt.subplots(1, 3, figsize=(9, 3.1))
for ax, (title, tr), en in zip(axes, traces.items(), (A, B, AND)):
    P.plot_energy(en, grid, ax)
    P.plot_trajectories(tr, ax, chains=range(cfg.traj_chains))
    ax.set_title(title, fontsize=9)
fig.tight_layout()

# %%
n = cfg.compose_chains
x0 = -4 + 8 * torch.rand(n, 2, generator=torch.Generator().manual_seed(3))
gen = torch.Generator().manual_seed(4)
x_and = C.sequential_langevin([A, B], x0, cfg.compose_steps, step, clamp=cfg.data_range, generator=gen).x
x_or = C.sequential_langevin([OR], x0, cfg.compose_steps, step, clamp=cfg.data_range, generator=gen).x
cells = {"A": grid.normalise(log_density=ring.log_prob), "B": grid.normalise(log_density=band.log_prob),
         "A AND B (product)": C.product_cells(grid, ring.log_prob, band.log_prob),
         "A OR B (mixture)": C.mixture_cells(grid, ring.log_prob, band.log_prob)}
compose = {}
for label, x in (("AND samples", x_and), ("OR samples", x_or)):
    compose[label] = {f"KL vs {k}": M.grid_kl(x, v, grid) for k, v in cells.items()}
    compose[label].update({f"in 90% region of {k}": C.high_density_fraction(x, cells[k], grid) for k in ("A", "B")})
fig, axes = plt.subplots(1, 4, figsize=(11, 2.9))
for ax, (title, lc) in zip(axes[:2], (("exact product p_A p_B", cells["A AND B (product)"]), ("exact mixture", cells["A OR B (mixture)"]))):
    P.plot_density(lc, grid, ax); ax.set_title(title, fontsize=9)
for ax, (title, x) in zip(axes[2:], (("samples of E_A + E_B", x_and), ("samples of OR", x_or))):
    P.plot_density(cells["A AND B (product)"] if "+" in title else cells["A OR B (mixture)"], grid, ax, gamma=0.5)
    P.plot_samples(x, ax, grid, s=1.0, max_points=1500, color="C3"); ax.set_title(title, fontsize=9)
fig.tight_layout()
rows = [[k] + [v[c] for c in v] for k, v in compose.items()]
display(Markdown(markdown_table(["samples"] + list(next(iter(compose.values()))), rows)))
metrics["composition_analytic"] = compose

# %% [markdown]
# The same with **learned** energies: the replay-buffer models of two targets from section 2 are summed, with no
# further training, and their samples are scored against the exact product of the two *true* densities. The
# learned product density (the summed energies, normalised on the grid) is compared with it too.

# %%
name_a, name_b = cfg.compose_learned
ta, tb = targets[name_a], targets[name_b]
fa, fb = fits[name_a]["replay"], fits[name_b]["replay"]
ea = lambda x: fa.model(x) / fa.temperature
eb = lambda x: fb.model(x) / fb.temperature
true_and = C.product_cells(grid, ta.log_prob, tb.log_prob)
true_or = C.mixture_cells(grid, ta.log_prob, tb.log_prob)
learned_and = T.learned_cells(C.SumEnergy(ea, eb), grid)
gen = torch.Generator().manual_seed(5)
x_land = C.sequential_langevin([ea, eb], x0, cfg.compose_steps, step, clamp=cfg.data_range, generator=gen).x
x_lor = C.sequential_langevin([C.MixtureEnergy(ea, eb)], x0, cfg.compose_steps, step, clamp=cfg.data_range, generator=gen).x
learned_compose = {
    "samples of learned E_A + E_B: KL vs exact product": M.grid_kl(x_land, true_and, grid),
    "samples of learned E_A + E_B: KL vs exact mixture": M.grid_kl(x_land, true_or, grid),
    "samples of learned OR: KL vs exact mixture": M.grid_kl(x_lor, true_or, grid),
    "samples of learned OR: KL vs exact product": M.grid_kl(x_lor, true_and, grid),
    "learned product density: KL(p_A p_B ‖ learned)": T.cell_kl(true_and, learned_and),
    "learned product density: KL(learned ‖ p_A p_B)": T.cell_kl(learned_and, true_and),
}
fig, axes = plt.subplots(1, 4, figsize=(11, 2.9))
P.plot_density(fa.log_cells, grid, axes[0]); axes[0].set_title(f"learned {name_a}", fontsize=9)
P.plot_density(fb.log_cells, grid, axes[1]); axes[1].set_title(f"learned {name_b}", fontsize=9)
P.plot_density(true_and, grid, axes[2]); axes[2].set_title("exact product of the truths", fontsize=9)
P.plot_density(learned_and, grid, axes[3], gamma=0.5); P.plot_samples(x_land, axes[3], grid, s=1.0, color="C3", max_points=1500)
axes[3].set_title("learned sum: density and samples", fontsize=9)
fig.tight_layout()
display(Markdown(markdown_table(["measure", "nats"], [[k, v] for k, v in learned_compose.items()])))
metrics["composition_learned"] = {"pair": [name_a, name_b], **learned_compose}
ca = compose["AND samples"]
display(Markdown(
    f"Where the samples of the analytic sum land: {100 * ca['in 90% region of A']:.0f}% of them fall in "
    f"A's 90% region and {100 * ca['in 90% region of B']:.0f}% in B's (OR samples: "
    f"{100 * compose['OR samples']['in 90% region of A']:.0f}% and {100 * compose['OR samples']['in 90% region of B']:.0f}%). "
    f"Their grid KL to the exact product is {ca['KL vs A AND B (product)']:.3f} nats against "
    f"{ca['KL vs A OR B (mixture)']:.3f} to the mixture; for the learned pair, "
    f"{learned_compose['samples of learned E_A + E_B: KL vs exact product']:.3f} to the product against "
    f"{learned_compose['samples of learned E_A + E_B: KL vs exact mixture']:.3f} to the mixture."))

# %% [markdown]
# ## 5. Adaptive computation: more steps at test time
#
# Sampling an EBM is an iterative optimisation, so a sample can be refined by simply running more Langevin steps.
# Below, chains start from uniform noise and the grid KL of their samples to the true density is read after each
# number of steps, for the replay-buffer and the noise-initialised models. The dashed line is the floor of exact
# samples of the same size.

# %%
refine = {}
fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 2.8), squeeze=False)
for ax, (name, target) in zip(axes[0], targets.items()):
    curves = {}
    for init in ("replay", "noise"):
        f = fits[name][init]
        r = T.refinement_curve(f.model, target, grid, f.spec, cfg.refine_chains, cfg.refine_checkpoints, seed=6)
        curves[init] = (r["steps"], r["kl"])
        refine.setdefault(name, {})[init] = r
    P.plot_curves(curves, ax, floor=M.exact_sample_floor(target, grid, cfg.refine_chains, cfg.floor_repeats,
                                                          generator=torch.Generator().manual_seed(7)),
                  xlabel="test-time Langevin steps", title=name)
    ax.axvline(base["n_steps"], color="0.5", lw=0.8, ls=":")
axes[0, 0].legend(fontsize=7)
fig.tight_layout()
metrics["adaptive_computation"] = refine
K = base["n_steps"]
lines = []
for name, r in refine.items():
    st = r["replay"]["steps"]
    at_k = min(st, key=lambda s: abs(s - K))
    lines.append(f"* **{name}**: replay model {r['replay']['kl'][st.index(at_k)]:.3f} nats after {at_k} steps (the "
                 f"training K), {r['replay']['kl'][-1]:.3f} after {st[-1]}; noise-initialised model "
                 f"{r['noise']['kl'][st.index(at_k)]:.3f} -> {r['noise']['kl'][-1]:.3f}.")
worse = {i: [n for n, r in refine.items() if r[i]["kl"][-1] > 1.2 * min(r[i]["kl"])] for i in ("replay", "noise")}
lines.append(f"* More steps than the minimum-KL point make samples worse by over 20% on {len(worse['noise'])} of "
             f"{len(refine)} targets for the noise-initialised model ({', '.join(worse['noise']) or 'none'}) and on "
             f"{len(worse['replay'])} for the replay model ({', '.join(worse['replay']) or 'none'}). A model trained on "
             "K-step chains from noise is only asked to be right after K steps; the replay model's negatives are "
             "long-run chains, so its energy is asked to be right at the chains' stationary state.")
metrics["adaptive_worse_after_more_steps"] = worse
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 6. What goes wrong: a run that diverges on purpose
#
# Seed 004 (section 9) lists the signs of a diverging EBM: energies that spike or saturate, data and negative energies
# that run away together while their difference stays small, samples that turn into noise. Section 3.3 gives the
# reason for the L2 term: without it "the actual values would fluctuate to numerically unstable values". So we remove
# it ($\alpha = 0$) and raise the learning rate (the settings are printed below). The same run is made twice: once with the guard switched
# off (no bound on $|E|$), and once with `max_abs_energy` set, so that the trainer reverts to its last verified
# snapshot and halves the learning rate whenever a batch's $|E|$ crosses the bound (the stabilisation advice of A.8). The
# rollback events come from the trainer's own log.

# %%
div_target = E.toy_2d(cfg.diverge_target)
runs = {"guard off": T.guarded_run(div_target, {**base, **cfg.diverge_spec, "max_abs_energy": 1e30}, cfg.diverge_iters),
        "guard on": T.guarded_run(div_target, {**base, **cfg.diverge_spec}, cfg.diverge_iters)}
fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
for ax, (label, r) in zip(axes[:2], runs.items()):
    h = [x for x in r["log"] if "event" not in x]
    it = [x["iteration"] for x in h]
    ax.semilogy(it, [x["max_abs_energy"] for x in h], lw=0.8, label="max |E| in batch")
    ax.semilogy(it, [abs(x["e_neg"] - x["e_pos"]) + 1e-6 for x in h], lw=0.8, label="|E(neg) - E(data)|")
    for ev in (x for x in r["log"] if x.get("event") == "rollback"):
        ax.axvline(ev["iteration"], color="C3", lw=1, ls="--")
    ax.axhline(cfg.diverge_spec["max_abs_energy"], color="0.4", lw=0.8, ls=":")
    ax.set_title(f"{label}: " + ("gave up" if r["gave_up"] else f"{r['trainer'].iteration} iterations"), fontsize=9)
    ax.set_xlabel("iteration")
axes[0].legend(fontsize=7)
good = runs["guard on"]["trainer"].model
P.plot_density(T.learned_cells(good, grid), grid, axes[2])
axes[2].set_title("guarded run: learned density", fontsize=9)
fig.tight_layout()
div = {}
for label, r in runs.items():
    h = [x for x in r["log"] if "event" not in x]
    ev = [x for x in r["log"] if x.get("event") == "rollback"]
    div[label] = {"iterations": r["trainer"].iteration, "gave_up": r["gave_up"], "rollbacks": len(ev),
                  "rollback_iterations": [x["iteration"] for x in ev], "rollback_lrs": [x["lr"] for x in ev],
                  "final_max_abs_energy": h[-1]["max_abs_energy"] if h else None,
                  "peak_max_abs_energy": max(x["max_abs_energy"] for x in h) if h else None,
                  "events_in_history": sum(1 for x in r["history"] if x.get("event") == "rollback"),
                  "kl_true_learned": T.cell_kl(grid.normalise(log_density=div_target.log_prob),
                                               T.learned_cells(r["trainer"].model, grid))}
metrics["divergence"] = div
off, on = div["guard off"], div["guard on"]
display(Markdown(
    f"Without the guard the largest |E| in a batch peaks at {off['peak_max_abs_energy']:.3g} and ends at "
    f"{off['final_max_abs_energy']:.3g}. With it, the trainer rolled back {on['rollbacks']} time(s) "
    f"(at iterations {on['rollback_iterations']}, learning rate after each: {on['rollback_lrs']}), "
    + (f"gave up ({on['gave_up']})" if on["gave_up"] else f"finished all {on['iterations']} iterations with max |E| "
       f"{on['final_max_abs_energy']:.3g}") + ". "
    f"Keeping the numbers finite is not the same as learning well: the guarded run's KL(p ‖ p_θ) is "
    f"{on['kl_true_learned']:.3f} nats on {cfg.diverge_target}"
    + (f", against {kl_table[cfg.diverge_target]['replay']['kl_true_learned']:.3f} for the base run with the L2 term. "
       if cfg.diverge_target in kl_table else ". ")
    + f"The trainer's `history` and its append-only `metrics.jsonl` log agree: {on['events_in_history']} and "
      f"{on['rollbacks']} rollback events."))

# %% [markdown]
# Reading the left panel: the energies do not drift slowly, they *run away*: once the data and negative energies are free of
# the L2 term, a large update can shift the whole surface, the gap $E(x^-) - E(x^+)$ stays small while both run off
# together, and from then on nothing in the loss brings them back (the loss only sees their difference). The
# guard cannot tell a good spike from a bad one; it only bounds $|E|$, so its threshold must sit well above the
# energies a healthy run reaches and its snapshots must be recent enough that reverting loses little.

# %% [markdown]
# ## 7. Summary

# %%
elapsed = time.time() - t_start
metrics["wall_seconds"] = elapsed
metrics["budget_grad_evals"] = budget
path = save_metrics(out_dir, "02_training_2d", cfg.scale, metrics)
rows = [[n] + [f"{kl_table[n][i]['kl_true_learned']:.3f} / {kl_table[n][i]['kl_learned_true']:.3f}" for i in cfg.inits]
        for n in targets]
display(Markdown(f"**Scale `{cfg.scale}`**, whole notebook {elapsed:.0f} s; metrics written to `{path.name}`.\n\n"
                 "KL(p ‖ p_θ) / KL(p_θ ‖ p) in nats, at equal compute:\n\n"
                 + markdown_table(["target"] + list(cfg.inits), rows)))

# %% [markdown]
# In short: Algorithm 1 learns every one of these 2D densities well enough to be scored against the truth; the
# tables above say, for this run, where the replay buffer beats restarts from noise and persistent chains and where
# it does not, which of the paper's tips hold at this scale, that summing energies samples their product while a
# log-sum-exp samples their union, that test-time steps refine samples up to the point the model itself allows, and
# that a run without the L2 term can be kept alive by rolling it back. The next chapters move from the plane to images,
# where none of these exact scores exist any more.
