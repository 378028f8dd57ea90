"""Chapter 08: dSprites latents and splits (``latents``), latent-conditional experts and their sums
(``zeroshot``), the judge that reads latents off images (``judge``) and the chapter's experiments, tables and
sentences (``experiments``)."""
from ebmlib.chapters.composition.experiments import paper_rows
from ebmlib.chapters.composition.zeroshot import train_models

__all__ = ["train_models", "paper_rows"]
