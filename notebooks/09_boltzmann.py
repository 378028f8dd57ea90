# %% [markdown]
# # Restricted Boltzmann machines: the classical EBM, scored exactly
#
# Before deep energy networks, the energy-based model most people trained was the restricted Boltzmann machine
# (RBM): binary visible units $v$, binary hidden units $h$, and the energy
#
# $$E(v, h) = -b^\top v - c^\top h - v^\top W h .$$
#
# It is the latent-variable EBM of the theory page in its simplest form. Because no two units of one layer
# interact, the hidden units sum out in closed form into the **free energy**
#
# $$F(v) = -\log \sum_h e^{-E(v, h)} = -b^\top v - \sum_j \operatorname{softplus}\big(c_j + (W^\top v)_j\big),$$
#
# so $p(v) = e^{-F(v)}/Z$ is an EBM on $\{0,1\}^{784}$, and both conditionals factorise:
# $p(h_j = 1 \mid v) = \sigma(c_j + (W^\top v)_j)$ and $p(v_i = 1 \mid h) = \sigma(b_i + (W h)_i)$. Block Gibbs
# sampling alternates the two layers; it plays the part Langevin dynamics plays for the image EBMs of chapters
# 03-08. The likelihood gradient is the same "data term minus model term" as eq. (7) of the paper, and the model
# term is again estimated by chains: **CD-k** {cite:p}`hinton2002training` starts them at the data batch and
# runs $k$ Gibbs sweeps, **PCD** {cite:p}`tieleman2008training` keeps them running across updates, as the
# paper's replay buffer keeps its samples.
#
# What makes this chapter different from the others is that an RBM with few hidden units can be scored
# **exactly**: summing over its $2^H$ hidden states gives $\log Z$. That is the classical test of annealed
# importance sampling {cite:p}`salakhutdinov2008quantitative`, and we use it here on a trained RBM before
# trusting AIS on RBMs too large to enumerate. Everything runs in `ebmlib.core.rbm` (the model, CD-k, PCD,
# exact answers, AIS) and `ebmlib.chapters.boltzmann` (this chapter's data, tables and figures); its unit tests
# compare each piece with brute-force enumeration of a tiny RBM.

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
seed = 0            # 0 gives the committed outputs
out_dir = None      # metrics JSON; None: $EBMLIB_OUT, else "_results"
overrides = {}      # preset values to replace, e.g. {"ais_temps": 100}; or $EBMLIB_SET

# %%
import matplotlib.pyplot as plt

import ebmlib.chapters.boltzmann as B
from ebmlib.notebook.setup import start

ch = start("09_boltzmann", scale, seed, out_dir, overrides)
cfg = ch.cfg
print(ch.describe())
train = B.binarised_mnist("train", cfg.n_train, cfg.binarise_seed)
test = B.binarised_mnist("test", cfg.n_test, cfg.binarise_seed + 1)
print(f"binarised MNIST: {len(train)} training and {len(test)} test images, "
      f"{float(train.mean()):.3f} of the training pixels on")

# %% [markdown]
# The data are MNIST digits binarised stochastically: each pixel is on with probability equal to its grey
# level, drawn once with a fixed seed. Log-likelihoods below are in nats per image of this **discrete**
# distribution; they cannot be set beside chapter 05's numbers, which are densities of dequantised continuous
# images.
#
# ## 1. An RBM small enough to score exactly
#
# We train an RBM with few hidden units by CD-1, compute its $\log Z$ by enumerating every hidden state, and
# then run AIS on the same RBM: from a base RBM with no weights and either zero biases (uniform over
# $\{0,1\}^{784}$) or the data's per-pixel log-odds, through a sigmoid schedule of intermediate RBMs whose
# weights grow from 0 to $W$, with one Gibbs sweep per step.

# %%
small = B.train_all({"exact": cfg.exact}, train, ch.seed)["exact"]
temps = list(cfg.exact_temps)
check = B.exact_check(small["rbm"], train, test, cfg.exact_chains, temps, ch.seed)
ch.metrics["exact"] = dict(check, seconds_train=small["seconds"])
header, rows, caption = B.exact_table(check, cfg.exact["n_hidden"])
ch.table(header, rows, digits=2, caption=caption)

# %% [markdown]
# Read the table by rows. From the uniform base with the fewest intermediate distributions, AIS falls *below*
# the exact value by more than three of its standard errors: AIS's $\hat Z$ is unbiased, so $\log \hat Z$ is
# biased low (Jensen), and at an effective sample size of a few chains the reported standard error, a function
# of the ESS alone, says little. More intermediate distributions, or a base that already has the data's
# per-pixel means, raise the ESS and bring the estimate onto the exact value within its error bars. This is the
# same estimator, summarised the same way, that chapter 05 uses for the deep EBMs, where no exact answer exists;
# the unit tests repeat the check on small random RBMs.

# %% [markdown]
# ## 2. CD-1, CD-k and PCD on 500 hidden units
#
# Three RBMs of the same size start from the same weights and see the same data for the same number of epochs;
# they differ only in where the negative chains come from and how long they run.

# %%
trained = B.train_all(cfg.models, train, ch.seed)
scores = B.ais_table(trained, train, test, cfg.ais_chains, cfg.ais_temps, ch.seed)
ch.metrics["models"] = scores
header, rows, caption = B.model_table(scores, cfg.ais_temps, cfg.ais_chains)
ch.table(header, rows, digits=2, caption=caption)
ch.show(B.model_sentence(scores))

# %% [markdown]
# The reconstruction error (one Gibbs sweep from the data) is what CD-1 training curves usually show, and the
# table shows why it is a poor guide: it rewards a model whose chains stay near the data, which says little
# about $p(v)$; compare its ranking of the three models with the likelihood's. Where a model's AIS ESS is
# small, its likelihood is weak evidence, exactly as in section 1 with too few intermediate distributions.
#
# ## 3. What the hidden units learned, and what the chains produce

# %%
B.filters_figure(trained, cfg.filters)
plt.show()
B.samples_figure(trained, cfg.samples, cfg.sample_steps, ch.seed)
plt.show()

# %% [markdown]
# Each tile of the first figure is one hidden unit's weights over the 28 x 28 image (scaled to its own range):
# stroke detectors and blob-like "pieces of digits" are what lets a sum of softplus terms describe the data.
# The second figure runs each model's Gibbs chain from uniform noise for many more sweeps than any training
# chain ran. CD-1's negative chains never left the data's neighbourhood, so nothing in its training penalised
# the low-energy states far from the digits that its long chains fall into; CD-10's chains wandered further
# during training, and PCD's training chains *were* long-run chains. In the committed run the difference is
# plain to see: CD-1's long chains end mostly in near-empty images, CD-10's in varied digits, PCD-1's in a few
# digit classes. The last can mean that PCD-1's model puts too much mass on those classes or that Gibbs chains
# mix too slowly between the modes of a sharp RBM to show the rest; the likelihood table cannot tell the two
# apart (and PCD itself assumes that the weights change slowly enough for its chains to keep up
# {cite:p}`tieleman2008training`).
#
# ## 4. Summary

# %%
path = ch.save()
ch.show(f"**Scale `{cfg.scale}`**, whole notebook {ch.elapsed()[0]:.0f} s; metrics "
        f"written to `{path.name}`. " + B.summary_line(check, scores))
