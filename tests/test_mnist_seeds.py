"""Chapter 03's verdicts over training seeds (section 10): the checks the results page applies, the seed rule and
the shipped seed checkpoints."""
import copy
import json
from pathlib import Path

import pytest

from ebmlib.chapters import mnist as M

RESULTS = Path(__file__).resolve().parents[1] / "book" / "results" / "03_mnist.json"


def energy(test=0.01, samples=0.02, train=0.0, noise=1.0):
    return {"train": train, "test": test, "samples (buffer)": samples, "uniform noise": noise}


def restoration(sp=(0.3, 0.1), ip=(0.5, 0.3), gt=0.05):
    def entry(before, after):
        return dict(changed_class_before=before, changed_class_after=after, accuracy_after=0.9, mean_abs_change=0.1)
    return {"salt and pepper (0.1)": entry(*sp), "bottom half masked": entry(*ip), "ground-truth init": entry(0, gt)}


def run(e=None, rs=None, samples_median=8.0, test_median=7.0, conversion=0.9):
    return dict(energy_means=e or energy(), restoration=rs or restoration(), conversion_accuracy=conversion,
                nn_distance=dict(samples_median=samples_median, test_median=test_median))


def test_the_checks_hold_exactly_at_their_thresholds():
    assert M.fig2_offsets(energy(test=0.05, samples=-0.02, noise=-1.0))["samples (buffer)"] == pytest.approx(0.02)
    assert M.fig2_holds(energy(test=0.05, samples=0.05)) and not M.fig2_holds(energy(samples=0.0501))
    assert M.fig2_holds(energy(test=0.4, samples=0.4, noise=10.0))        # 4% of a larger train-to-noise distance
    assert M.fig6_holds(restoration(gt=0.10)) and not M.fig6_holds(restoration(gt=0.101))
    assert not M.fig6_holds(restoration(ip=(0.3, 0.3)))                   # inpainting not improved
    assert M.fig20_holds(dict(samples_median=7.0, test_median=7.0))
    assert not M.fig20_holds(dict(samples_median=6.9, test_median=7.0))
    assert [M.over_seeds(f) for f in ([True] * 3, [True, False, True], [False] * 3)] == [
        "reproduced", "partly reproduced", "not reproduced"]


def test_seed_rows_and_sentence_say_where_each_check_holds():
    by_seed = {0: run(), 1: run(samples_median=6.0), 2: run(e=energy(samples=0.2))}
    rows = M.seeds_rows(by_seed)
    assert [r[0] for r in rows] == ["0", "1", "2"] and all(len(r) == len(M.SEEDS_HEADER) for r in rows)
    assert rows[2][1].endswith("(fails)") and rows[1][4].endswith("(fails)") and rows[0][2].endswith("(holds)")
    assert M.seeds_verdicts(by_seed) == {"Fig. 2": "partly reproduced", "Fig. 6": "reproduced",
                                         "Fig. 20": "partly reproduced"}
    text = M.seeds_sentence(by_seed)
    assert text.startswith("Over 3 training seeds: Fig. 2 partly reproduced: holds in 2 of 3 seeds"), text
    assert "+0.33 ± 1.15, inside the spread" in text                      # gaps +1, -1, +1
    steady = M.seed_notes({s: run(samples_median=8.0 + 0.01 * s) for s in range(3)})
    assert "above zero beyond the spread" in steady["Fig. 20"]


def test_paper_rows_decide_fig2_6_20_over_the_seeds():
    record = json.loads(RESULTS.read_text())
    single = {r["item"]: r for r in M.paper_rows(record)}
    with_seeds = copy.deepcopy(record)
    with_seeds["metrics"]["seeds"] = json.loads(json.dumps({0: run(), 1: run(rs=restoration(gt=0.2)), 2: run()}))
    rows = {r["item"]: r for r in M.paper_rows(with_seeds)}
    assert rows["Fig. 6"]["verdict"] == "partly reproduced" and "holds in 2 of 3 seeds" in rows["Fig. 6"]["note"]
    assert rows["Fig. 2"]["verdict"] == "reproduced" and rows["Fig. 20"]["verdict"] == "reproduced"
    assert "3 seeds" in rows["Fig. 7 / 19"]["data"] and rows["Fig. 7 / 19"]["verdict"] == "shown (qualitative)"
    assert rows["Fig. 2"]["ours"] == single["Fig. 2"]["ours"] and rows["Fig. 17"] == single["Fig. 17"]


def test_seed_models_load_another_seed_from_the_shipped_seed_folder(tmp_path, monkeypatch):
    """Seed 1's two replay models are read from ``checkpoints/seed_1/`` when they are there: nothing is trained."""
    from ebmlib.presets import preset
    cfg = preset("03_mnist", "smoke")
    shipped, out = tmp_path / "shipped", tmp_path / "out"
    M.train_models(cfg, 1, only=list(M.SEED_MODELS), out_dir=shipped / "seed_1", shipped_dir=None, progress=False)
    monkeypatch.setattr(M, "SHIPPED_DIR", shipped)
    own = {"mnist_uncond_replay": object()}
    by_seed = M.seed_models(cfg, (0, 1), own, 0, out, progress=False)
    assert by_seed[0] is own and set(by_seed[1]) == set(M.SEED_MODELS)
    assert all(t.origin().startswith("loaded") for t in by_seed[1].values())
    assert not any((out / "seed_1").glob("*.pt"))
    # one seed's run on those models, at smoke sizes: every check the results page applies has its inputs
    import torch
    from ebmlib.data import load_images
    train, test = load_images("mnist", "train"), load_images("mnist", "test").subset(64, torch.Generator())
    gen = torch.Generator().manual_seed(0)
    clf = M.classifier(cfg, 0, train, out_dir=tmp_path / "clf")
    x_test, pool = test.continuous(gen), train.subset(cfg.nn_train, gen).continuous(gen)
    record = M.seed_run(by_seed[1], clf, train, x_test, test.labels, pool, cfg, gen)
    assert set(record) == {"energy_means", "restoration", "nn_distance", "conversion_accuracy"}
    assert len(M.seeds_rows({1: record})[0]) == len(M.SEEDS_HEADER)
    assert set(M.seeds_verdicts({1: record, 2: record})) == {"Fig. 2", "Fig. 6", "Fig. 20"}


def test_every_shipped_seed_of_the_two_replay_models_has_its_demo_recipe():
    from ebmlib.core.image_ebm import image_recipes
    from ebmlib.core.recipes import SHIPPED_DIR, load_trained
    from ebmlib.presets import preset
    cfg = preset("03_mnist", "demo")
    assert len(cfg.seeds) >= 3
    for seed in cfg.seeds:
        recipes = image_recipes(cfg.models, seed)
        folder = SHIPPED_DIR if seed == 0 else SHIPPED_DIR / f"seed_{seed}"
        for name in M.SEED_MODELS:
            t = load_trained(recipes[name], (folder,))
            assert t is not None and len(t.history) == recipes[name].n_iters, (name, seed)
