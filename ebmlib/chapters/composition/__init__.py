"""Chapter 07: dSprites latents and splits (``latents``), latent-conditional experts and their sums (``zeroshot``)."""
