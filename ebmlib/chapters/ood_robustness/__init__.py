"""Chapter 06: out-of-distribution detection by energy (``ood``), adversarial robustness with section 4.4's
sampling defence (``adversarial``), and the page's experiment loops, tables and sentences (``report``)."""
from ebmlib.chapters.ood_robustness.report import paper_rows
from ebmlib.core.image_ebm import load_or_train_models
from ebmlib.core.recipes import SHIPPED_DIR
from ebmlib.core.seeds import seed_folders
from ebmlib.data import load_images
from ebmlib.notebook.launch import train_in_processes

__all__ = ["train_models", "seed_models", "paper_rows"]


def train_models(cfg, seed: int = 0, only=None, **options) -> dict:
    """The preset's image EBMs (``cfg.models``), each loaded from its checkpoint or trained; ``options``:
    ``out_dir``, ``shipped_dir``, ``device``, ``progress``, ``log``, ``world``. When the preset asks for several
    processes they train under torchrun first (:func:`ebmlib.notebook.launch.train_in_processes`)."""
    train_in_processes(cfg, seed, only, **options)
    return load_or_train_models(cfg.models, lambda name: load_images(name, "train"), seed, only, **options)


def seed_models(cfg, seeds, models: dict, own_seed: int, out_dir, **options) -> dict:
    """The preset's models for each training seed in ``seeds``: ``models``, the chapter's own, for ``own_seed``;
    else loaded from the shipped ``checkpoints/seed_<s>`` or ``out_dir/seed_<s>``, or trained into the latter
    (``options`` for :func:`train_models`). Returns ``{seed: models}``."""
    return {seed: models if seed == own_seed else train_models(cfg, seed, **seed_folders(SHIPPED_DIR, out_dir, seed),
                                                               **options) for seed in seeds}
