"""ebmlib: the library behind the EBM book (Du & Mordatch 2019, *Implicit Generation and Generalization in EBMs*).

Modules, one concept each: ``energies`` (exact 2D targets), ``samplers`` (Langevin as in the paper, ULA, MALA,
random-walk MH, HMC), ``nets`` (energy networks), ``buffer`` (replay buffer), ``train`` (Algorithm 1),
``checkpoint`` (atomic, weights-only checkpoints), ``metrics`` (distances to exact densities), ``compose``
(sums and mixtures of energies), ``toy2d`` (fit and score EBMs on 2D targets), ``data`` (MNIST-class loaders,
Shadow-hand trajectories), ``pretrained`` (training recipes and shipped checkpoints), ``quality`` (FID in a
classifier's feature space), ``restore`` (restoration, inpainting, conversion by sampling), ``scales`` (smoke /
demo / paper presets), ``results`` (metrics JSON), ``cli`` (``python -m ebmlib``), ``ais`` (AIS and RAISE
likelihood bounds), ``ood`` (out-of-distribution scores and AUROC), ``adversarial`` (PGD and the sampling
defence), ``dynamics`` (EBM and FC dynamics models of the Shadow hand, roll-outs, Frechet curves), ``latents`` (dSprites latent codes and the
zero-shot data sets), ``zeroshot`` (latent-conditional energies, their sums, A.5 KL fine-tuning, the latent judge); ``plotting`` (matplotlib) is imported on its own.
"""
from . import buffer, checkpoint, compose, energies, metrics, nets, results, samplers, scales, toy2d, train  # noqa: F401
from . import adversarial, ais, data, dynamics, latents, ood, pretrained, quality, restore, zeroshot  # noqa: F401

__version__ = "0.1.0"
