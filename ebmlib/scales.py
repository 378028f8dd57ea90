"""Named size presets: every chapter runs at ``smoke``, ``demo`` or ``paper`` scale.

* smoke: seconds on 2 CPU cores; proves every cell runs (CI).
* demo: CPU minutes; the committed outputs of the book, already showing the paper's point.
* paper: the paper's settings (A.7), for a GPU.

A notebook asks for its preset once: ``cfg = ebmlib.scales.preset("01_sampling", scale)`` and reads its sizes
from ``cfg``; the scale never appears as an ``if`` in the notebook.
"""
from __future__ import annotations

import os
from types import MappingProxyType, SimpleNamespace

__all__ = ["SCALES", "PRESETS", "preset", "scale_from_env", "register"]

SCALES = ("smoke", "demo", "paper")

#: chapter -> scale -> settings. Chapters register their presets here (one dict per chapter, below).
PRESETS: dict[str, dict[str, dict]] = {}


def register(chapter: str, presets: dict[str, dict]) -> None:
    """Register a chapter's presets; each of smoke, demo and paper must be given."""
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise ValueError(f"presets for chapter {chapter!r} lack scales {missing}; need all of {SCALES}")
    PRESETS[chapter] = {s: MappingProxyType(dict(presets[s])) for s in SCALES}


def scale_from_env(default: str = "demo") -> str:
    """The scale named by the EBMLIB_SCALE environment variable (CI sets it to ``smoke``)."""
    return check_scale(os.environ.get("EBMLIB_SCALE", default))


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


def preset(chapter: str, scale: str) -> SimpleNamespace:
    """The settings of ``chapter`` at ``scale`` as an attribute namespace (``cfg.n_chains`` ...)."""
    check_scale(scale)
    if chapter not in PRESETS:
        raise KeyError(f"no presets for chapter {chapter!r}; known chapters: {sorted(PRESETS)}")
    return SimpleNamespace(scale=scale, **PRESETS[chapter][scale])


# ---------------------------------------------------------------------------------------------------------
# Chapter presets. Keep each chapter's block together; sizes only, no logic.


# -- 01_sampling: sampling from known 2D energies (CPU at every scale; "paper" only means more chains/steps,
#    the chapter is a 2D toy with no counterpart in the paper's experiments) --
register("01_sampling", {
    "smoke": dict(
        landscape_grid=50, landscape_samples=300,          # section 1: plots of the six targets
        grid_n=30, floor_repeats=2,                        # grid KL: cells per axis, exact-sample repeats
        compare_targets=("two_moons",), compare_chains=200, compare_checkpoints=(0, 5, 20),
        mmd_points=200,
        bias_chains=200, bias_burn_in=20, bias_steps=20, bias_step_sizes=(0.2, 1.0),
        mix_separations=(2.0, 5.0), mix_chains=100, mix_steps=20,
        traj_separations=(2.0, 5.0), traj_chains=3, traj_steps=30,
        panel_chains=200, panel_steps=20, panel_step_sizes=(0.005,), panel_noise_stds=(0.005, 0.1),
        widget_chains=200, widget_max_steps=100,
    ),
    "demo": dict(
        landscape_grid=120, landscape_samples=1000,
        grid_n=40, floor_repeats=10,
        compare_targets=("eight_gaussians", "two_moons"), compare_chains=3000,
        compare_checkpoints=(0, 3, 10, 30, 100, 300, 1000),
        mmd_points=2000,
        bias_chains=2000, bias_burn_in=100, bias_steps=200,
        bias_step_sizes=(0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.4, 1.8),
        mix_separations=(1.5, 2.5, 3.5, 5.0), mix_chains=1000, mix_steps=500,
        traj_separations=(2.5, 5.0), traj_chains=4, traj_steps=500,
        panel_chains=1500, panel_steps=300, panel_step_sizes=(0.00125, 0.005, 0.03125),   # T = 1 at sigma = sqrt(2h)
        panel_noise_stds=(0.005, 0.05, 0.1, 0.25, 0.5),
        widget_chains=1000, widget_max_steps=500,
    ),
    "paper": dict(
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
    ),
})


# -- 02_training_2d: Algorithm 1 on 2D targets with exact densities, ablations at equal compute, composition
#    (Fig. 14), adaptive computation and a diverging run. CPU at every scale; "paper" means longer runs and
#    several seeds, not the paper's image settings. Spec keys are those of ebmlib.toy2d.BASE_SPEC. --
_TOY_ABLATIONS = {
    "Langevin noise (A.8)": {"noise x0.1": {"noise_std": 0.0245}, "noise x1 (T = 1)": {}, "noise x3": {"noise_std": 0.735}},
    "step size (A.8)": {"step 0.003": {"step_size": 0.003}, "step 0.03": {}, "step 0.3": {"step_size": 0.3}},
    "L2 coefficient alpha (3.3, A.4)": {"alpha 0": {"alpha": 0.0}, "alpha 0.01": {}, "alpha 1": {"alpha": 1.0}},
    "Langevin steps K (equal compute)": {"K = 5": {"n_steps": 5}, "K = 20": {}, "K = 60": {"n_steps": 60}},
    "activation (A.8)": {"swish": {}, "relu": {"act": "relu"}, "leaky_relu": {"act": "leaky_relu"}},
    "spectral norm (3.3)": {"no SN": {}, "SN": {"spectral_norm": True}},
}
register("02_training_2d", {
    "smoke": dict(
        threads=1, data_range=(-4.0, 4.0), grid_n=32, seeds=(0,),
        targets=("two_moons", "two_rings"), inits=("replay", "noise", "persistent"),
        base_spec=dict(n_iters=20, n_steps=5, batch_size=32, hidden=16, depth=2, checkpoint_every=10),
        n_samples=200, sample_steps=10, floor_repeats=2,
        ablation_target="two_moons",
        ablations={"Langevin noise (A.8)": {"noise x0.1": {"noise_std": 0.0245}, "noise x1 (T = 1)": {}},
                   "Langevin steps K (equal compute)": {"K = 2": {"n_steps": 2}, "K = 5": {}}},
        compose_chains=200, compose_steps=20, traj_chains=3, traj_steps=40, compose_learned=("two_rings", "two_moons"),
        refine_chains=200, refine_checkpoints=(0, 2, 5, 10),
        diverge_target="two_moons", diverge_iters=30, diverge_spec=dict(alpha=0.0, lr=0.5, max_abs_energy=5.0, checkpoint_every=5, max_rollbacks=3),
    ),
    "demo": dict(
        threads=1, data_range=(-4.0, 4.0), grid_n=64, seeds=(0,),
        targets=("eight_gaussians", "two_rings", "two_moons", "checkerboard"), inits=("replay", "noise", "persistent"),
        base_spec=dict(n_iters=500, n_steps=20, batch_size=128, hidden=64, depth=3, checkpoint_every=50),
        n_samples=2000, sample_steps=200, floor_repeats=5,
        ablation_target="two_moons", ablations=_TOY_ABLATIONS,
        compose_chains=2000, compose_steps=300, traj_chains=4, traj_steps=150,
        compose_learned=("two_rings", "two_moons"),
        refine_chains=2000, refine_checkpoints=(0, 1, 3, 10, 20, 50, 100, 300, 1000),
        diverge_target="eight_gaussians", diverge_iters=300, diverge_spec=dict(alpha=0.0, lr=0.1, max_abs_energy=50.0, checkpoint_every=10, max_rollbacks=3),
    ),
    "paper": dict(
        threads=1, data_range=(-4.0, 4.0), grid_n=80, seeds=(0, 1, 2),
        targets=("eight_gaussians", "two_rings", "two_moons", "checkerboard"), inits=("replay", "noise", "persistent"),
        base_spec=dict(n_iters=5000, n_steps=20, batch_size=256, hidden=128, depth=3, checkpoint_every=100),
        n_samples=10000, sample_steps=500, floor_repeats=10,
        ablation_target="two_moons", ablations=_TOY_ABLATIONS,
        compose_chains=10000, compose_steps=1000, traj_chains=4, traj_steps=300,
        compose_learned=("two_rings", "two_moons"),
        refine_chains=10000, refine_checkpoints=(0, 1, 3, 10, 20, 50, 100, 300, 1000, 3000),
        diverge_target="eight_gaussians", diverge_iters=1000, diverge_spec=dict(alpha=0.0, lr=0.1, max_abs_energy=50.0, checkpoint_every=10, max_rollbacks=3),
    ),
})


# -- 03_mnist: deep EBMs on continuous MNIST (section 4 on MNIST-class data). Models are ebmlib.pretrained
#    recipes; "demo" loads the shipped checkpoints when they were trained by exactly these recipes. Equal
#    compute: every model takes the same iterations, batch and Langevin steps; only the chain start differs. --
def _mnist_models(width: int, n_iters: int, snapshot_every: int, keep_buffer: int, **train) -> dict:
    common = dict(width=width, n_iters=n_iters, snapshot_every=snapshot_every, keep_buffer=keep_buffer)
    return {
        "mnist_uncond_replay": dict(common, dataset="mnist", conditional=False, train=dict(train, init="replay")),
        "mnist_cond_replay": dict(common, dataset="mnist", conditional=True, train=dict(train, init="replay")),
        "mnist_cond_noise": dict(common, dataset="mnist", conditional=True, train=dict(train, init="noise")),
        "fashion_uncond_replay": dict(common, dataset="fashion", conditional=False, train=dict(train, init="replay")),
    }


register("03_mnist", {
    "smoke": dict(
        threads=1, models=_mnist_models(4, 6, 3, 64, batch_size=16, n_steps=5, lr=1e-3, checkpoint_every=3),
        classifier_epochs=1, classifier_train=1000, n_eval=64, fid_samples=200, eval_steps=10,
        noise_chains=4, noise_steps=20, noise_frames=(0, 5, 10, 20), per_class=2, nn_train=2000,
        hist_n=200, restore_n=32, restore_steps=10, convert_n=4, completions=3,
    ),
    "demo": dict(
        threads=1, models=_mnist_models(16, 1200, 100, 1000, batch_size=64, n_steps=20, lr=1e-3,
                                        channels_last=True, checkpoint_every=100),
        classifier_epochs=2, classifier_train=60000, n_eval=1000, fid_samples=1000, eval_steps=60,
        noise_chains=8, noise_steps=200, noise_frames=(0, 5, 10, 20, 40, 80, 120, 200), per_class=8,
        nn_train=60000, hist_n=1000, restore_n=500, restore_steps=40, convert_n=10, completions=6,
    ),
    "paper": dict(
        threads=None, models=_mnist_models(64, 30000, 1000, 10000, batch_size=128, n_steps=60, lr=1e-4,
                                           channels_last=True, checkpoint_every=500),
        classifier_epochs=5, classifier_train=60000, n_eval=10000, fid_samples=10000, eval_steps=60,
        noise_chains=16, noise_steps=500, noise_frames=(0, 10, 20, 50, 100, 200, 300, 500), per_class=16,
        nn_train=60000, hist_n=10000, restore_n=10000, restore_steps=60, convert_n=10, completions=8,
    ),
})


# -- 04_likelihood: AIS / RAISE bounds on continuous MNIST (A.3, Fig. 22/23). The replay model is chapter 3's
#    recipe (same shipped checkpoint); the PCD model differs only in keeping persistent chains. The Fig. 23
#    sensitivity models vary one setting of a base recipe each: the L2 coefficient alpha (step 10) and the
#    Langevin step size (alpha 1); on CPU they are smaller and shorter than the replay/PCD pair (stated on the page).
def _likelihood_models(scale_models: dict, sensitivity: dict) -> dict:
    replay = scale_models["mnist_uncond_replay"]
    models = {"mnist_uncond_replay": replay,
              "mnist_uncond_pcd": dict(replay, train=dict(replay["train"], init="persistent"))}
    base = dict(replay, **{k: v for k, v in sensitivity.items() if k != "train"})
    base["train"] = dict(replay["train"], **sensitivity.get("train", {}))
    for alpha in SENSITIVITY_ALPHAS:                  # Fig. 23, upper block (step size 10)
        models[f"sens_l2_{alpha:g}"] = dict(base, train=dict(base["train"], alpha=alpha, step_size=10.0))
    for step in SENSITIVITY_STEPS[1:]:                # Fig. 23, lower block (alpha 1; step 10 is sens_l2_1)
        models[f"sens_step_{step:g}"] = dict(base, train=dict(base["train"], alpha=1.0, step_size=step))
    return models


SENSITIVITY_ALPHAS = (0.01, 0.1, 1.0)
SENSITIVITY_STEPS = (10.0, 100.0, 1000.0)

register("04_likelihood", {
    "smoke": dict(
        threads=1, models=_likelihood_models(PRESETS["03_mnist"]["smoke"]["models"], dict(keep_buffer=16)),
        exact_dims=(2, 50), exact_temps=(10, 100), exact_chains=32,
        t_grid=(1e-3, 1e-2), t_chains=4, t_temps=5, bound_temps=(5, 10), bound_chains=4, sens_temps=5, sens_chains=4,
        n_test=4, histogram_n=16, n_base_fit=500, ais_settings=dict(pilot_chains=4, pilot_steps=1),
    ),
    # AIS cost: one HMC transition (5 leapfrog steps) per temperature, ~6 energy+gradient evaluations per chain
    # and temperature, ~0.6 ms each for the width-16 CNN at one thread (0.35 ms at width 8)
    "demo": dict(
        threads=1, models=_likelihood_models(PRESETS["03_mnist"]["demo"]["models"],
                                             dict(width=8, n_iters=500, keep_buffer=200)),
        exact_dims=(2, 50, 784), exact_temps=(10, 30, 100, 300, 1000), exact_chains=256,
        t_grid=(3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3), t_chains=8, t_temps=100,
        bound_temps=(100, 500), bound_chains=16, sens_temps=200, sens_chains=8,
        n_test=16, histogram_n=1000, n_base_fit=20000, ais_settings=dict(pilot_chains=8, pilot_steps=1),
    ),
    # A.3: AIS and RAISE with 10,000 chains (Fig. 22/23); the paper does not give its number of temperatures
    "paper": dict(
        threads=None, models=_likelihood_models(PRESETS["03_mnist"]["paper"]["models"], {}),
        exact_dims=(2, 50, 784), exact_temps=(10, 30, 100, 300, 1000, 3000), exact_chains=1000,
        t_grid=(3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2), t_chains=100, t_temps=1000,
        bound_temps=(1000, 10000), bound_chains=10000, sens_temps=10000, sens_chains=10000,
        n_test=10000, histogram_n=10000, n_base_fit=60000,
        ais_settings=dict(pilot_chains=64, pilot_steps=3, n_leapfrog=10),   # A.3: HMC with 10 leapfrog steps
    ),
})


# -- 05_ood_robustness: OOD detection by energy (section 4.3, Fig. 9/10) and adversarial robustness of the
#    conditional EBM classifier (section 4.4, Fig. 11). smoke/demo: chapter 3's MNIST-class models (same recipes,
#    so the same shipped checkpoints), MNIST and Fashion-MNIST each in distribution. paper: CIFAR-10 as in the
#    paper, the A.6 ResNets trained with A.7's settings (GPU), SVHN and DTD out of distribution. ``datasets``:
#    what the notebook loads; ``ood_in``: the in-distribution sets of the OOD section (each needs a
#    "<name>_uncond_replay" model); ``adv_dataset``: whose "<name>_cond_replay" model is attacked. eps in pixel
#    units of [0, 1] images. --
def _ood_models(scale: str) -> dict:
    m = PRESETS["03_mnist"][scale]["models"]
    return {k: m[k] for k in ("mnist_uncond_replay", "mnist_cond_replay", "fashion_uncond_replay")}


# A.7: 60 Langevin steps of size 10 (noise 0.005, gradient clip 0.01 are TrainConfig's defaults), replay buffer
# of 10,000, alpha 1, Adam lr 1e-4 betas (0, 0.999), batch 128 + 128. The paper trains "on 1 GPU for 2 days" and
# gives no iteration count; 40,000 iterations is our estimate of that budget (see the chapter).
_CIFAR_A7 = dict(batch_size=128, n_steps=60, step_size=10.0, lr=1e-4, buffer_capacity=10000, init="replay",
                 channels_last=True, checkpoint_every=1000)


def _cifar_models(n_iters: int) -> dict:
    common = dict(dataset="cifar10", width=128, n_iters=n_iters, snapshot_every=2000, keep_buffer=1000, train=_CIFAR_A7)
    return {"cifar10_uncond_replay": dict(common, conditional=False),    # ResNet32Large, Fig. 24b
            "cifar10_cond_replay": dict(common, conditional=True)}       # ResNet32, Fig. 24a


_MNIST_SETS = dict(datasets=("mnist", "fashion"), ood_in=("mnist", "fashion"), adv_dataset="mnist", adv_batch=None)

register("05_ood_robustness", {
    "smoke": dict(threads=1, models=_ood_models("smoke"), **_MNIST_SETS, progress=False, n_ood=64, pca_components=8,
                  pca_train=500, classifier_epochs=1, classifier_train=1000, n_adv=8, pgd_steps=2, defence_steps=2,
                  defended_norms=("linf",), eps_linf=(0.0, 0.1), eps_l2=(0.0, 1.0)),
    # PGD through 10 differentiable Langevin steps costs ~54 s per PGD step per 100 images on this CPU, so the demo
    # attacks the defended model in L-inf only, with 10 PGD steps on 32 digits
    "demo": dict(threads=1, models=_ood_models("demo"), **_MNIST_SETS, progress=False, n_ood=2000, pca_components=50,
                 pca_train=20000, classifier_epochs=2, classifier_train=60000, n_adv=32, pgd_steps=10, defence_steps=10,
                 defended_norms=("linf",), eps_linf=(0.0, 0.1, 0.2, 0.3), eps_l2=(0.0, 1.0, 2.0, 3.0)),
    # The paper's Fig. 9 / 11 on CIFAR-10. Fig. 11's axes are in 0..255 units: L-inf 0..30, L2 0..95 (here / 255).
    # adv_batch: PGD through 10 Langevin steps keeps the graph of 10 steps x 10 classes per image in GPU memory.
    "paper": dict(threads=None, models=_cifar_models(40000), datasets=("cifar10",), ood_in=("cifar10",),
                  adv_dataset="cifar10", adv_batch=25, progress=True, n_ood=10000, pca_components=100,
                  pca_train=50000, classifier_epochs=10, classifier_train=50000, n_adv=1000, pgd_steps=20,
                  defence_steps=10, defended_norms=("linf", "l2"),
                  eps_linf=tuple(k / 255 for k in (0, 5, 10, 15, 20, 25, 30)),
                  eps_l2=tuple(k / 255 for k in (0, 15, 30, 45, 60, 75, 95))),
})


# -- 07_composition: dSprites compositional generation (section 6, Fig. 15/16, A.5). Models are
#    ebmlib.zeroshot recipes (shipped checkpoints load only when the recipe matches). Demo: 32x32 sprites
#    (64x64 average-pooled), width-8 CNN energies, a few hundred iterations each, 10 Langevin steps; paper: 64x64,
#    the release's dSprites settings (20 steps of size 500, Swish, ~0.95M-parameter nets, width 32). --
def _composition(resolution: int, width: int, n_iters: int, ds_iters: int, ft_iters: int, judge: dict, **train) -> dict:
    def ebm(latents, data, iters=n_iters):
        return dict(latents=latents, data=data, resolution=resolution, width=width, n_iters=iters, train=dict(train))
    experts = {
        # Fig. 15: one expert per latent, each on all of dSprites
        "ds_scale": ebm(("scale",), "full", ds_iters), "ds_position": ebm(("position",), "full", ds_iters),
        "ds_rotation": ebm(("rotation",), "full", ds_iters), "ds_shape": ebm(("shape",), "full", ds_iters),
        # Fig. 16: experts on D1 / D2 / D3, and the jointly conditioned baselines on the unions; a baseline gets
        # as many iterations as the two experts of its sum together
        "zs_size_D1": ebm(("scale",), "D1"), "zs_position_D2": ebm(("position",), "D2"),
        "zs_shape_D3": ebm(("shape",), "D3"),
        "zs_joint_size_position": ebm(("scale", "position"), "D1+D2", 2 * n_iters),
        "zs_joint_shape_position": ebm(("shape", "position"), "D2+D3", 2 * n_iters),
    }
    # A.5 / PAPER.md: the sum fine-tuned jointly with the KL term on, Adam lr 1e-3, betas (0, 0.999)
    ft = dict(resolution=resolution, width=width, n_iters=ft_iters, train=dict(train, lr=1e-3, kl_weight=1.0))
    finetune = {"zs_sum_size_position": dict(ft, parts=("zs_size_D1", "zs_position_D2"), data="D1+D2"),
                "zs_sum_shape_position": dict(ft, parts=("zs_shape_D3", "zs_position_D2"), data="D2+D3")}
    return dict(experts=experts, finetune=finetune, judge=dict(judge, resolution=resolution))


register("07_composition", {
    "smoke": dict(threads=1, **_composition(32, 2, 2, 2, 2, dict(width=2, n_iters=5, train=dict(batch=16)),
                                            batch_size=8, n_steps=2, step_size=100.0, lr=1e-3, checkpoint_every=1),
                  sample_steps=3, n_joint=4, n_test=8, n_show=4, n_judge_eval=32, position_tol=0.1),
    "demo": dict(threads=1, **_composition(32, 8, 200, 150, 60, dict(width=16, n_iters=3000, train=dict(batch=128)),
                                           batch_size=32, n_steps=10, step_size=100.0, lr=1e-3, checkpoint_every=50),
                 sample_steps=60, n_joint=16, n_test=100, n_show=8, n_judge_eval=1000, position_tol=0.1),
    "paper": dict(threads=None, **_composition(64, 32, 30000, 30000, 300, dict(width=32, n_iters=20000, train=dict(batch=128)),
                                               batch_size=128, n_steps=20, step_size=500.0, lr=1e-4, checkpoint_every=500),
                  sample_steps=200, n_joint=64, n_test=2000, n_show=12, n_judge_eval=10000, position_tol=0.1),
})


# -- 06_robot_hand: EBM vs FC dynamics models of the Shadow hand and cube (section 5, Fig. 12/13, A.7). Data from
#    ebmlib.data.hand (scripted policy; ~3 trajectories/s per worker). Langevin acts on normalised displacements
#    (ebmlib.dynamics); the demo's gradient clip is 5x A.7's so 10 steps can travel the unit spread of a step. --
register("06_robot_hand", {
    "smoke": dict(threads=1, n_traj=12, length=12, workers=1, data_seed=0, test_fraction=0.34, horizon=12,
                  ebm_iters=20, fc_iters=40, batch_size=64, ebm_lr=1e-3, fc_lr=1e-3,
                  sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.05, init_std=1.0),
                  frame_times=(0, 4, 8, 12), frame_size=(96, 72)),
    "demo": dict(threads=1, n_traj=1000, length=100, workers=2, data_seed=0, test_fraction=0.1, horizon=100,
                 ebm_iters=2500, fc_iters=3000, batch_size=128, ebm_lr=1e-3, fc_lr=1e-3,
                 sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.05, init_std=1.0),
                 frame_times=(0, 20, 40, 60, 80, 100), frame_size=(160, 120)),
    # section 5: 200,000 trajectories of 100 steps, 90/10 split; A.7: batch 128, Adam(0, 0.999) at 1e-4, 10 Langevin
    # steps of size 10, noise 0.005, clip 0.01 (the paper gives no iteration count)
    "paper": dict(threads=None, n_traj=200_000, length=100, workers=16, data_seed=0, test_fraction=0.1, horizon=100,
                  ebm_iters=100_000, fc_iters=100_000, batch_size=128, ebm_lr=1e-4, fc_lr=1e-4,
                  sampling=dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.01, init_std=1.0),
                  frame_times=(0, 20, 40, 60, 80, 100), frame_size=(320, 240)),
})
