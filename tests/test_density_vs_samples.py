"""Chapter 02's density-against-samples experiment: the harder targets are proper densities, the run reports
what it says, and the sentence follows the numbers."""
import torch

from ebmlib.chapters import training_2d as T
from ebmlib.core import energies as E
from ebmlib.core.metrics import Grid2D


def test_harder_targets_are_normalised_and_sample_where_their_mass_is():
    grid = Grid2D((-4.0, 4.0), 200)
    for name in ("spiral", "grid_gaussians"):
        t = E.toy_2d(name)
        with torch.no_grad():
            mass = float(t.log_prob(grid.points).exp().sum() * grid.cell_area)
        assert abs(mass - 1) < 0.01, (name, mass)
        x = t.sample(2000, torch.Generator().manual_seed(0))
        assert float(t.log_prob(x).mean()) > float(t.log_prob(torch.rand(2000, 2) * 8 - 4).mean()) + 2


def test_a_tiny_run_reports_every_checkpoint_and_both_checks():
    grid = Grid2D((-4.0, 4.0), 24)
    spec = dict(n_steps=2, batch_size=16, hidden=8, depth=2, checkpoint_every=2)
    r = T.density_vs_samples(E.toy_2d("two_moons"), spec, (2, 4), grid, 50, 3, 6)
    assert [row["iteration"] for row in r["rows"]] == [2, 4]
    assert set(r["check"]) == {"sampler, 3 steps", "sampler, 6 steps", "MALA, 3 steps", "MALA, 6 steps"}
    assert 0 <= r["check"]["MALA, 6 steps"]["acceptance"] <= 1 and "acceptance" not in r["check"]["sampler, 3 steps"]


def _run(sample_kls, self_kls, check):
    rows = [dict(iteration=i, density_kl=1.0, sample_kl=a, self_kl=b)
            for i, a, b in zip((1, 2, 3), sample_kls, self_kls)]
    return {"rows": rows, "check": check}


def test_the_sentence_names_parted_targets_and_what_fixed_them():
    check = {"sampler, 5 steps": dict(sample_kl=50.0, self_kl=40.0), "sampler, 50 steps": dict(sample_kl=49.0, self_kl=40.0),
             "MALA, 5 steps": dict(sample_kl=5.0, self_kl=4.0), "MALA, 50 steps": dict(sample_kl=2.0, self_kl=1.0)}
    runs = {"spiral": _run([1.0, 0.9, 50.0], [0.5, 0.6, 40.0], check),
            "moons": _run([1.0, 0.8, 0.7], [0.5, 0.5, 0.5], check)}
    text = T.density_sentence(runs)
    assert "spiral (samples' KL 0.90 at 2 iterations, 50.00 at 3)" in text and "moons" not in text
    assert "longer chains fixed none" in text and "same proposal fixed spiral" in text
    calm = T.density_sentence({"moons": runs["moons"]})
    assert "did not part ways" in calm
