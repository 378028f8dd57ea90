# %% [markdown]
# # Denoising and anomaly detection with an energy
#
# An energy function is useful even when nobody samples from it. This chapter uses chapter 03's unconditional
# MNIST EBM for two tasks the EBM tutorials the book grows from name as the classic applications: **repairing**
# a corrupted image and **flagging** an unusual one.
#
# **Denoising.** Given a noisy image $\tilde x$, look for an image that the model finds likely *and* that stays
# close to what was observed:
#
# $$\hat x = \arg\min_x \; E_\theta(x) + \frac{\lambda}{2}\,\lVert x - \tilde x \rVert^2 .$$
#
# Under Gaussian noise of standard deviation $s$ and the prior $p(x) \propto e^{-E_\theta(x)/T}$ this is the
# posterior mode when $\lambda = T/s^2$. The paper restores images differently (section 4.2): it runs its
# Langevin sampler from the corrupted image with no fidelity term at all, so the chain keeps whatever the
# energy alone preserves. We run both, with $\lambda$ swept over a grid, against two classical filters
# (a Gaussian blur with its best width, a 3 x 3 median), and score by PSNR against the clean digit.
#
# **Anomaly detection.** $E_\theta(x)$ is high where the model puts little mass, so it ranks inputs by how
# unusual they are without ever computing $Z$. We score clean test digits against digits with local defects
# (a white square, a scratch), rotated digits and another data set, by AUROC, next to two standard baselines
# fitted on the same training digits: the probabilistic-PCA Gaussian's $-\log p(x)$ (chapter 06's baseline) and
# PCA's reconstruction error.
#
# Every piece lives in `ebmlib` (`ebmlib.core.denoise`, `ebmlib.core.scores`, and `ebmlib.chapters.denoising`
# for this chapter's experiments); their unit tests check the descent against the closed-form posterior mode of
# a Gaussian prior, and the AUROC against hand-counted cases.

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
seed = 0            # 0 gives the committed outputs (and uses the shipped checkpoint)
out_dir = None      # metrics JSON and trained models; None: $EBMLIB_OUT, else "_results"
overrides = {}      # preset values to replace, e.g. {"n_images": 50}; or $EBMLIB_SET

# %%
import matplotlib.pyplot as plt

import ebmlib.chapters.denoising as D
from ebmlib.data.images import load_images
from ebmlib.notebook.setup import start

ch = start("10_denoising", scale, seed, out_dir, overrides)
cfg = ch.cfg
print(ch.describe())

# %%
name, trained = D.load_model(cfg, ch.seed, ch.out_dir)
model = trained.model
T = D.model_temperature(cfg.models[name]["train"])
test = load_images("mnist", "test")
clean = D.clean_digits(test.images, cfg.n_images, ch.rng(0))
print(f"{name}: {trained.origin()}; its training sampler's temperature T = {T:.3g}")

# %% [markdown]
# ## 1. Denoising: PSNR against the noise level
#
# Each noise level corrupts the same clean test digits; every method starts from the same noisy images.
# Energy descent runs plain gradient steps on the objective above (no noise), the paper's restoration runs
# A.7's Langevin sampler for as many steps.

# %%
grid = D.denoising_grid(model, clean, cfg.stds, cfg.lams, cfg.n_steps, cfg.step_size,
                        cfg.langevin_steps, ch.seed)
D.classical_filters(clean, grid, cfg.blur_sigmas)
header, rows = D.psnr_rows(grid, cfg.lams, T)
ch.metrics["psnr"] = D.psnr_metrics(grid)
ch.metrics["temperature"] = T
ch.table(header, rows, digits=2,
         caption=f"PSNR in dB (higher is better), mean over {len(clean)} test digits; "
                 f"{cfg.n_steps} steps of size {cfg.step_size:g}.")
D.psnr_figure(grid, cfg.lams)
plt.show()
ch.show(D.lambda_sentence(grid, cfg.lams, T))

# %% [markdown]
# Three things to read off. First, whether the EBM beats the filters at all: a blur removes noise and strokes
# alike, while the energy knows what strokes look like. Second, the best $\lambda$ against noise level: the
# posterior argument says it should fall like $1/s^2$. Third, the last column: Bayes' $\lambda = T/s^2$ with the
# temperature at which the model was trained to be sampled. The gap between that value and the best one
# measured says how far the trained energy is from a calibrated prior at its own sampling temperature, an
# honest reminder (theory page, section 6) that short-run chains do not make $e^{-E/T}$ the model's density.

# %%
methods = D.example_methods(grid, cfg.example_std, cfg.lams)
D.examples_figure(clean, grid, cfg.example_std, methods)
plt.show()

# %% [markdown]
# ## 2. Anomaly detection by energy
#
# The baselines are fitted on training digits; every score is "higher = more anomalous".

# %%
train = load_images("mnist", "train")
pca = D.fit_baseline(train.images, cfg.pca_components, cfg.pca_train, ch.rng(1))
normal = D.clean_digits(test.images[-cfg.n_anomaly:], cfg.n_anomaly, ch.rng(2))
other = D.clean_digits(load_images(cfg.other, "test").images, cfg.n_anomaly, ch.rng(3))
sets = D.defects(normal, other, ch.rng(4), cfg.patch)
clean_scores = D.anomaly_scores(model, pca, normal)
set_scores = {k: D.anomaly_scores(model, pca, x) for k, x in sets.items()}
header, rows, table = D.anomaly_rows(clean_scores, set_scores)
ch.metrics["auroc"] = table
ch.table(header, rows, caption=f"AUROC against {len(normal)} clean test digits "
                               f"(\"other data set\": {cfg.other} test images).")
D.roc_figure(clean_scores, set_scores)
plt.show()
ch.show(D.anomaly_sentence(table))

# %% [markdown]
# A defect that adds ink where digits never have it is what PCA's reconstruction error was built for: a white
# square or a scratch lies far outside the span of the principal components, however digit-like the rest of the
# image is. The energy of a network trained to tell digits from its own samples has no such guarantee: a local
# defect moves it only as much as the network's features notice, and a scratch is a stroke. Whole-image changes
# (a rotated digit, another data set) are where a learned energy has the better chance. The sentence under the
# figure says which way this model went on each set.
#
# ## 3. Summary

# %%
path = ch.save()
ch.show(f"**Scale `{cfg.scale}`**, whole notebook {ch.elapsed()[0]:.0f} s; metrics "
        f"written to `{path.name}`.")
