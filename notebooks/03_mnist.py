# %% [markdown]
# # Deep EBMs on MNIST, from noise to digits
#
# The first image chapter. A convolutional energy $E_\theta(x)$ over $28\times28$ images is trained with Algorithm 1
# of {cite:t}`du2019implicit` on continuous MNIST {cite:p}`lecun1998gradient`, unconditionally and conditioned on
# the digit class (a class-conditional model in the sense of the
# {ref}`second theory page <more-conditional>`), and then put
# through the paper's image experiments at a size a CPU can train:
#
# 1. continuous MNIST with the paper's dequantisation (A.3);
# 2. training with the replay buffer (section 3.2), with curves of $E(\text{data})$ and $E(\text{negatives})$ and
#    samples over training, next to short-run chains started from noise at **equal compute**;
# 3. a small classifier trained on MNIST, used only to *measure* samples;
# 4. generation from noise over sampling time (Fig. 21), buffer samples against fresh chains (Fig. 3), and
#    class-conditional samples (Fig. 17);
# 5. sample quality as an FID computed **in that classifier's feature space** (not Inception FID) and the accuracy
#    of class-conditional samples;
# 6. nearest neighbours in the training set (Fig. 20) and energy histograms of train, test and samples
#    (Fig. 2, Fig. 10);
# 7. cross-class conversion (Fig. 7 and 19), restoration from salt-and-pepper noise, a masked half and the clean
#    image (Fig. 6), and diverse completions of one masked digit (Fig. 8);
# 8. the unconditional recipe on Fashion-MNIST;
# 9. a conditional recipe, found by a search within one CPU-hour per model, whose samples come out as the requested
#    digit from the buffer and from noise, over three training seeds.
#
# The models are the paper's MNIST network at reduced width. Training them takes CPU-minutes per model, so the
# book ships their checkpoints (`ebmlib/checkpoints/`, made by `python -m ebmlib train 03_mnist --scale demo`); the
# notebook loads a shipped checkpoint only when it was trained by exactly the recipe of the chosen scale, and
# trains otherwise.

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
overrides = {}      # preset values to replace, e.g. {"n_eval": 64}; or $EBMLIB_SET (JSON)

# %%
import matplotlib.pyplot as plt
import torch

import ebmlib.notebook.plotting as P
from ebmlib.chapters import mnist as M
from ebmlib.core.classifiers import accuracy
from ebmlib.data import load_mnist
from ebmlib.notebook.setup import start

ch = start("03_mnist", scale, seed, out_dir, overrides)
cfg, gen = ch.cfg, ch.rng(0)
print(ch.describe())

# %% [markdown]
# ## 1. Continuous MNIST
#
# Pixels are integers $0..255$; an EBM defines a *density* on $[0, 1]^{784}$, so the data must be continuous too.
# Like the paper (A.3, following {cite:t}`uria2013rnade`), each pixel value $n$ becomes $x = (n + U)/256$ with
# $U \sim \mathcal U(0, 1)$, i.e. $x = \tfrac{n}{255}\cdot\tfrac{255}{256} + \mathcal U(0, \tfrac{1}{256})$, fresh
# at every draw. The images are kept as
# uint8 and dequantised batch by batch. The loader reads torchvision's files under `$EBMLIB_DATA` (or
# `~/.cache/ebmlib/data`) and downloads them when they are missing.

# %%
train, test = load_mnist("mnist", "train"), load_mnist("mnist", "test")
x_show = train.subset(32, gen).continuous(gen)
print(M.data_line(train, test, x_show))
P.show_images(x_show, nrow=16, title="dequantised training digits");

# %% [markdown]
# ## 2. Training with the replay buffer, and without it
#
# Three models share one network and one budget: the same iterations, batch, and $K$ Langevin steps per negative
# (A.7's sampler: noise 0.005, gradient clipped to 0.01 per pixel, step 10, images clamped to $[0, 1]$), with the
# L2 term ($\alpha = 1$) and Adam with $\beta_1 = 0$ and A.7's gradient clip. They differ only in conditioning
# and where the chains start:
#
# * `mnist_uncond_replay`: unconditional, chains from the replay buffer (95%) or uniform noise (5%);
# * `mnist_cond_replay`: class-conditional through per-class gains and biases on every hidden layer (A.6), replay
#   buffer;
# * `mnist_cond_noise`: class-conditional, every chain restarted from uniform noise (short-run training).
#
# A fourth, `fashion_uncond_replay`, is the unconditional replay recipe on Fashion-MNIST {cite:p}`xiao2017fashion`
# (section 8).

# %%
models = M.train_models(cfg, ch.seed, only=list(cfg.models), out_dir=ch.out_dir,
                        progress=False, device=ch.device)
ch.metrics["models"] = M.model_metrics(models)
ch.table(M.MODEL_HEADER, M.model_rows(models))

# %% [markdown]
# The two terms of the loss over training: the energy of data $E(x^+)$ is pushed down, that of the negatives
# $E(x^-)$ up, and the L2 term keeps both near zero. When the sampler produces data-like negatives the two curves
# meet; a persistent gap means the negatives are still easy to tell from data.

# %%
mnist_models = M.mnist_models(models)
P.plot_training({k: t.history for k, t in mnist_models.items()},
                smooth=M.smoothing(models["mnist_cond_replay"].history));

# %% [markdown]
# **Samples over training.** Each row shows the newest negatives at one point of training (64 per snapshot, the
# first 12 here). With the replay buffer the chains keep improving across iterations; restarted from noise they only
# get $K$ steps.

# %%
for key, t in mnist_models.items():
    fig = P.image_rows(M.snapshot_rows(t))
    fig.suptitle(key, fontsize=10, y=1.02)
    plt.show()

# %% [markdown]
# ## 3. A classifier to measure samples
#
# There are no Inception weights offline, so samples are scored by a small CNN classifier trained here on the same
# (dequantised) MNIST training digits. Its test accuracy says how far its judgement can be trusted. Its penultimate
# layer is the feature space of the FID below: **that FID is not the Inception FID of the paper's tables** and is
# only comparable with numbers from the same classifier.

# %%
clf = M.classifier(cfg, ch.seed, train, out_dir=ch.out_dir)
x_test = test.continuous(gen)
ch.metrics["classifier_test_accuracy"] = accuracy(clf, x_test, test.labels)
print(M.classifier_line(cfg, train, ch.metrics["classifier_test_accuracy"]))

# %% [markdown]
# ## 4. From noise to digits
#
# **Generation over sampling time (Fig. 21).** Chains start at uniform noise and follow the same Langevin sampler
# for longer than in training; each row is one chain, each column a number of steps.

# %%
x0 = torch.rand(cfg.noise_chains, 1, 28, 28, generator=gen)
for key in ("mnist_uncond_replay", "mnist_cond_replay"):
    M.noise_frames_figure(models[key], x0, cfg.noise_frames, gen)
    plt.show()

# %% [markdown]
# **Buffer samples against fresh chains (Fig. 3).** What the replay buffer holds at the end of training is the
# model's sample after a very long effective chain. Fresh chains from noise get only the steps they are given.

# %%
M.buffer_vs_fresh_figure(models["mnist_uncond_replay"], cfg.noise_steps, gen)
plt.show()

# %% [markdown]
# **Class-conditional samples (Fig. 17).** One row per class. The conditional replay model is sampled two ways:
# chains continuing from its buffer, relabelled with the requested class (how its training negatives were made), and
# fresh chains from noise; the short-run model from noise, as it was trained.

# %%
panels = M.conditional_panels(models, cfg.per_class, cfg.eval_steps, cfg.noise_steps, gen)
M.panels_figure(panels, cfg.per_class)
plt.show()

# %% [markdown]
# ## 5. Sample quality in numbers
#
# For each model, samples are drawn three ways: fresh chains from noise with as many steps as in training
# ($K$), fresh chains with many more steps, and chains that continue from the model's own buffer (its final
# training negatives). Conditional models sample equal numbers of each class and are also scored by how often the
# classifier agrees with the requested class. Two reference rows bracket the FID: held-out test digits (the best a
# perfect sampler can get with this many images) and uniform noise.

# %%
n = cfg.fid_samples
quality = M.sample_quality(clf, mnist_models, train, x_test, n, cfg.noise_steps,
                           cfg.eval_steps, gen)
ch.metrics["quality"] = quality
ch.table(M.QUALITY_HEADER, M.quality_rows(quality),
         caption=f"FID in the feature space of the MNIST classifier ({n} samples against "
         f"{n} training digits; lower is better), and the classifier's accuracy on "
         "class-conditional samples:")

# %%
ch.metrics["best_cond_replay"] = M.best_protocol(quality, "mnist_cond_replay")
ch.metrics["best_cond_noise"] = M.best_protocol(quality, "mnist_cond_noise")
ch.show(M.quality_sentence(ch.metrics["best_cond_replay"], ch.metrics["best_cond_noise"]))

# %% [markdown]
# ## 6. Copies or new digits? Nearest neighbours and energies
#
# **Nearest neighbours (Fig. 20).** Each buffer sample of the unconditional model (left column) next to its three
# nearest training digits by L2 distance. If the model had memorised the training set, samples would sit much closer
# to their neighbours than held-out test digits do.

# %%
t = models["mnist_uncond_replay"]
pool = train.subset(cfg.nn_train, gen).continuous(gen)
P.image_rows(M.neighbour_rows(t.samples[:8], pool),
             col_labels=["sample", "1st NN", "2nd NN", "3rd NN"]);
plt.show()
n = cfg.hist_n
ch.metrics["nn_distance"] = M.nn_distances(t.samples[:n], x_test[:n], pool)
print(M.nn_line(ch.metrics["nn_distance"], len(pool)))

# %% [markdown]
# **Energy histograms (Fig. 2 and Fig. 10).** Energies of training digits, held-out test digits and the model's
# samples. The paper's point: train and test energies nearly coincide (no overfitting of the density to the
# training set), and samples sit where data sits.

# %%
sets = M.mnist_energy_sets(t, train, x_test, cfg.hist_n, gen)
energies = M.image_energies(t.model, sets)
M.energy_histogram(energies, skip=["uniform noise"])
plt.show()
ch.metrics["energy_means"] = M.energy_means(energies)
print(M.energy_line(ch.metrics["energy_means"]))

# %% [markdown]
# ## 7. Conversion, restoration and completion
#
# **Cross-class conversion (Fig. 7 and 19).** The conditional replay model is started at a test digit of one class
# (left column) and conditioned on each class in turn.

# %%
t = models["mnist_cond_replay"]
converted = M.convert(t.model, x_test, test.labels, cfg.convert_n, cfg.eval_steps, gen)
P.image_rows(converted, col_labels=["start"] + [str(c) for c in range(10)]);
plt.show()
ch.metrics["conversion_accuracy"], n_conv = M.conversion_accuracy(clf, converted)
print(M.conversion_line(ch.metrics["conversion_accuracy"], n_conv, cfg.eval_steps))

# %% [markdown]
# **Restoration (Fig. 6).** Test digits are corrupted three ways and given to the unconditional replay model:
# salt-and-pepper noise on 10% of the pixels; the bottom half replaced by uniform noise with the top half clamped
# (inpainting); and no corruption at all (ground-truth initialisation). The model never learned to denoise: it just
# samples from where it starts (restoration as energy minimisation, and what the short chain stands in for, are
# on the {ref}`second theory page <more-denoising>`). The classifier measures how often the restored digit keeps
# its class. The paper reports on CIFAR-10 {cite:p}`krizhevsky2009learning` that about 10% of objects change class
# from the ground truth and about 30% under salt-and-pepper noise or inpainting.

# %%
t = models["mnist_uncond_replay"]
x = x_test[: cfg.restore_n]
ch.metrics["restoration"], shown = M.restoration(t.model, clf, x, test.labels[: len(x)],
                                                 cfg.restore_steps, gen)
for name, (xc, xr) in shown.items():
    P.image_rows({"original": x[:10], name: xc[:10], "restored": xr[:10]});
    plt.show()
ch.table(M.RESTORATION_HEADER, M.restoration_rows(ch.metrics["restoration"]),
         caption=f"{len(x)} test digits, {cfg.restore_steps} Langevin steps. Fraction "
         "whose predicted class differs from the clean digit's:")

# %% [markdown]
# **Diverse completions (Fig. 8).** The same masked digit completed by independent chains: with the top half
# clamped, the model fills in the bottom half in different ways.

# %%
rows = M.completions(t.model, x_test, cfg.completions, cfg.noise_steps, generator=gen)
P.image_rows(rows, col_labels=["original", "masked"]
             + [f"chain {j}" for j in range(cfg.completions)]);
plt.show()

# %% [markdown]
# ## 8. A second data set: Fashion-MNIST
#
# The same unconditional recipe trained on Fashion-MNIST (clothing, same size and format). Its replay buffer and
# fresh chains, and its energies of Fashion-MNIST train and test images, of its own samples, and of MNIST digits,
# which it never saw: a first look at the out-of-distribution question of a later chapter.

# %%
t = models["fashion_uncond_replay"]
f_test = load_mnist("fashion", "test").continuous(gen)
M.fashion_figure(t, f_test, cfg.noise_steps, gen)
plt.show()

# %%
f_train = load_mnist("fashion", "train")
f_sets = M.fashion_energy_sets(t, f_train, f_test, x_test, cfg.hist_n, gen)
f_energies = M.image_energies(t.model, f_sets)
M.energy_histogram(f_energies, "energy E(x) under the Fashion-MNIST model", clip=0.005)
plt.show()
ch.metrics["fashion_energy_means"] = M.energy_means(f_energies)
ch.metrics["fashion_model_mnist_below_fashion_test"] = M.unseen_below(f_energies)
print(M.energy_line(ch.metrics["fashion_energy_means"]))
ch.show(M.fashion_sentence(ch.metrics["fashion_model_mnist_below_fashion_test"]))

# %% [markdown]
# ## 9. A recipe whose conditional samples come out right, within one CPU-hour
#
# Section 2's conditional replay model (scored in section 5) was trained at a constant learning rate of
# $10^{-3}$ with $K = 20$ Langevin steps per negative and stopped at iteration 1,200. The recipe here is the same
# network, rate and sampler with
# **twice the steps ($K = 40$)**, trained 2.5 times as long (3,000 iterations), keeping the weights of ten snapshots
# over training. A **second classifier** (another seed, the *judge*) reads samples of every snapshot
# (`budget_track_n` of them, 100 at demo scale), from the run's buffer and from noise, and the snapshot it reads
# best is the model (no class below 80% first, then the worse of the two accuracies); the chapter's own classifier
# then scores fresh samples of the chosen snapshot, and of the last weights of the same run. The recipe is trained
# at three seeds; the **control** is the same 3,000-iteration run at section 2's $K = 20$. The targets: at least 95%
# of the samples read as the requested digit from the buffer and 90% from noise, with no class below 80%.

# %%
budget = M.train_models(cfg, ch.seed, only=list(cfg.budget_models), out_dir=ch.out_dir,
                        progress=False, device=ch.device)
ch.metrics["budget_models"] = M.model_metrics(budget)
judge = M.classifier(cfg, ch.seed + 1, train, out_dir=ch.out_dir, name="mnist_judge")
gen9 = ch.rng(9)
picks = {k: M.choose_snapshot(judge, t, cfg.budget_track_n, cfg.eval_steps,
                              cfg.noise_steps, gen9) for k, t in budget.items()}
chosen = {k: pick for k, (pick, _) in picks.items()}
ch.metrics["budget_along_training"] = {k: rows for k, (_, rows) in picks.items()}
ch.metrics["budget_chosen_iteration"] = {k: c.iteration for k, c in chosen.items()}

# %% [markdown]
# **Quality along training, as the judge reads it.** Every weight snapshot of the three seeds and of the control;
# the ringed point is each run's chosen snapshot, the grey lines the targets (95% from the buffer, 90% from noise,
# 80% for the lowest class).

# %%
M.along_training_figure(ch.metrics["budget_along_training"], cfg.eval_steps,
                        cfg.noise_steps, ch.metrics["budget_chosen_iteration"])
plt.show()

# %% [markdown]
# **What moves under the samples: the energy gap.** With $\alpha = 1$ Algorithm 1's loss is smallest at
# $E(\text{data}) = -\tfrac12$, $E(\text{negatives}) = +\tfrac12$, reached only when the two are told apart
# perfectly. A gap $E(x^-) - E(x^+)$ that keeps growing says the model separates its negatives from data faster
# than $K$ steps of the sampler make them data-like, the failure the replay buffer is meant to slow down.

# %%
gaps = {"mnist_cond_replay": models["mnist_cond_replay"], **budget}
ch.metrics["budget_gaps"] = M.gap_rows(gaps)
ch.table(M.GAP_HEADER, ch.metrics["budget_gaps"],
         caption="Mean energy gap over training:")
P.plot_training({k: [h for h in t.history if "e_pos" in h] for k, t in budget.items()},
                smooth=M.smoothing(budget[next(iter(budget))].history));

# %%
scored = M.budget_scored(models["mnist_cond_replay"], budget, chosen)
real = train.subset(cfg.budget_n, gen9).continuous(gen9)
bq = M.budget_quality(clf, scored, real, cfg.eval_steps, cfg.noise_steps, gen9)
ch.metrics["budget_quality"] = bq
ch.table(M.BUDGET_HEADER, M.budget_rows(scored, bq),
         caption=f"{cfg.budget_n} samples per protocol (labels 0-9 in turn), read by the "
         f"chapter's classifier: own buffer + {cfg.eval_steps} steps, noise + "
         f"{cfg.noise_steps} steps; FID in the classifier's space:")

# %%
runs = [k for k in budget if k != cfg.budget_control]
seeds = ch.metrics["budget_seeds"] = [f"{k}: chosen" for k in runs]
ch.table(M.SEED_HEADER, M.seed_rows(bq, seeds),
         caption=f"The chosen snapshots over the {len(seeds)} training seeds:")
ch.metrics["budget_seeds_meeting_targets"] = sum(M.meets_targets(bq[s]) for s in seeds)
hours = max(t.seconds for t in budget.values()) / 3600
ch.show(M.budget_sentence(bq, seeds, [f"{k}: last" for k in runs], "mnist_cond_replay",
                          f"{cfg.budget_control}: chosen", hours))

# %% [markdown]
# **Before and after.** One row per class, chains from noise: section 2's model and the first seed's chosen
# snapshot. Reading as the right digit is not the same as looking like the data: compare the FID columns of the
# table above, from the buffer and from noise, for how far fresh chains still are from typical digits.

# %%
first = seeds[0]
M.panels_figure(M.noise_panels({k: scored[k] for k in ("mnist_cond_replay", first)},
                               cfg.per_class, cfg.noise_steps, gen9), cfg.per_class)
plt.show()

# %% [markdown]
# ## 10. Summary

# %%
path = ch.save()
ch.table(["quantity", "ours", "paper (CIFAR-10 unless said)"], M.summary_rows(ch.metrics),
         caption=f"**Scale `{cfg.scale}`**, whole notebook {ch.elapsed()[0]:.0f} s; "
         f"metrics written to `{path.name}`.")

# %% [markdown]
# The numbers above come from this run (and its JSON). The models are far smaller and trained far shorter than the
# paper's (its MNIST network has ~1.25M parameters and the release trains for many thousands of iterations with
# $K = 60$), so the page makes the paper's qualitative points on MNIST rather than matching its CIFAR-10 numbers;
# where a row disagrees with the paper, the disagreement is the result. The next chapters put the same models to
# work on likelihoods (AIS) and on out-of-distribution detection.
