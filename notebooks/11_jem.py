# %% [markdown]
# # A classifier is secretly an energy-based model: JEM
#
# Any classifier with logits $f_\theta(x)$ defines a joint energy $E_\theta(x, y) = -f_\theta(x)[y]$ with a
# single normaliser, so that
#
# $$p_\theta(y \mid x) = \frac{e^{f_\theta(x)[y]}}{\sum_{y'} e^{f_\theta(x)[y']}}, \qquad
# E_\theta(x) = -\log \sum_y e^{f_\theta(x)[y]} .$$
#
# The first is the softmax the classifier already computes; the second, the marginal, is an EBM over images
# that nobody trains when the classifier is trained by cross-entropy, because the softmax is unchanged when a
# function of $x$ alone is added to every logit. {cite:t}`grathwohl2020your` (JEM) train both: the
# cross-entropy of $p(y \mid x)$ plus the maximum-likelihood gradient of $p(x)$, whose model term comes from
# Langevin chains with a replay buffer, the machinery of the paper's Algorithm 1. The theory page's section on
# conditional and joint models says why one $Z$ matters here: with a joint energy the label choice needs only
# energies, which it does not for separately normalised class-conditional models.
#
# JEM's claims, tested here on MNIST and Fashion-MNIST against **the same network trained as a plain
# classifier**: classification accuracy close to the plain network's, *better calibrated* confidence
# (expected calibration error and reliability diagrams, {cite:p}`guo2017calibration`), samples from the
# marginal, and out-of-distribution detection by the energy, compared with the maximum softmax probability
# {cite:p}`hendrycks2017baseline` on chapter 06's OOD sets. JEM itself reports these on CIFAR-10, SVHN and
# CIFAR-100; the numbers below are ours, on MNIST-class data. `ebmlib.core.jem` holds the model and its
# trainer (Algorithm 1's `Trainer` on the marginal plus the cross-entropy), `ebmlib.chapters.jem` this
# chapter's tables and figures.

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
overrides = {}      # preset values to replace, e.g. {"n_ood": 500}; or $EBMLIB_SET

# %%
import matplotlib.pyplot as plt

import ebmlib.chapters.jem as J
from ebmlib.data.images import load_images
from ebmlib.notebook.setup import start

ch = start("11_jem", scale, seed, out_dir, overrides)
cfg = ch.cfg
print(ch.describe())

# %% [markdown]
# ## 1. Training both models
#
# Each JEM model runs the preset's number of iterations of cross-entropy plus Algorithm 1 on the marginal; the
# plain classifier of the same network runs its epochs of cross-entropy alone. Both are loaded from shipped
# checkpoints when their recipes match.

# %%
models = {ds: J.train_pair(cfg, ds, ch.seed, ch.out_dir) for ds in cfg.datasets}
for ds, pair in models.items():
    for name, t in pair.items():
        print(f"{ds} {name}: {t.origin()}, {t.seconds:.0f} s of training")

# %% [markdown]
# ## 2. Accuracy and calibration

# %%
results, test_x = {}, {}
for k, ds in enumerate(cfg.datasets):
    test = load_images(ds, "test")
    x, results[ds] = J.evaluate(models[ds], test, cfg.n_test, ch.rng(k), cfg.n_bins)
    test_x[ds] = x
ch.metrics["classification"] = J.classification_metrics(results)
header, rows = J.accuracy_rows(results)
ch.table(header, rows, digits=4, caption=f"{cfg.n_test} test images per data set.")
J.reliability_figure(results)
plt.show()

# %% [markdown]
# A point on the diagonal of the reliability diagram means that the predictions made with that confidence
# are right that often; below it the model is overconfident, above it underconfident. The expected calibration
# error is the count-weighted mean distance from the diagonal. JEM's calibration gain was reported for deep
# CIFAR-10 classifiers, which are overconfident when trained plainly; a small MNIST-class network after two
# epochs may have little overconfidence to remove, so the comparison that matters is the one in the table, not
# the claim.
#
# ## 3. Samples of the marginal $p_\theta(x)$

# %%
jems = {ds: pair["JEM"] for ds, pair in models.items()}
J.samples_figure(jems, cfg.n_samples, cfg.sample_steps, cfg.jem["train"], ch.seed)
plt.show()

# %% [markdown]
# The left panels are the newest states of the replay buffer that training used; the right ones start new
# chains from uniform noise and run them for longer than any training chain. A classifier that learned its
# marginal well turns noise into things that look like its data; one whose $p(x)$ is poor makes images that look
# like nothing. At the demo's budget (1,500 iterations of 10 SGLD steps on a width-16 network, minutes of one CPU
# thread) the committed run is the second kind: a few buffer states show strokes or garment outlines in noise,
# and the chains from noise stay textured noise. JEM's own runs used 20 steps per iteration, a wide residual
# network and a GPU for days; the paper branch of this chapter (`scale = "paper"`) is the larger recipe.
#
# ## 4. Out-of-distribution detection: energy against maximum softmax

# %%
ood, rows = {}, []
for k, ds in enumerate(cfg.datasets):
    ood[ds], r = J.ood_rows(models[ds], ds, test_x[ds], cfg.n_ood, ch.rng(10 + k))
    rows += r
ch.metrics["ood"] = ood
sets = ood[cfg.datasets[0]]["sets"]
caption = f"AUROC against {cfg.n_ood} in-distribution test images (0.5 = chance)."
ch.table(["in distribution", "model", "score", *sets], rows, caption=caption)
ch.show(J.ood_sentence(ood))

# %% [markdown]
# Both scores come from the same logits, so the table also says what JEM's training did to them. The energy
# $-\log\sum_y e^{f(x)[y]}$ is what the generative term shapes: it is pushed down on data and up on the
# chains' samples, which start from uniform noise. The maximum softmax is a ratio of the same exponentials and
# is not trained to be low anywhere: a JEM classifier can be *more* sure of itself on inputs that resemble its
# negatives than on digits, and the rows below 0.5 are where that happened. A plain classifier's energy is
# the free-energy score of the same network without the generative term, for comparison.
#
# ## 5. Summary

# %%
ch.metrics["verdict"] = J.verdict(results, ood)
path = ch.save()
ch.show(f"**Scale `{cfg.scale}`**, whole notebook {ch.elapsed()[0]:.0f} s; metrics "
        f"written to `{path.name}`. " + ch.metrics["verdict"])
