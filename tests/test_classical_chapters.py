"""The chapter modules of 09-11 on tiny inputs: what their tables and sentences say follows from the numbers."""
import torch

from ebmlib.chapters import boltzmann as B
from ebmlib.chapters import denoising as D
from ebmlib.core.calibration import calibration


def test_rbm_sentence_orders_models_and_flags_small_ess():
    scores = {"CD-1": dict(test_ll=-150.0, ess=60.0, recon=10.0), "PCD-1": dict(test_ll=-120.0, ess=3.0, recon=20.0)}
    text = B.model_sentence(scores)
    assert text.index("PCD-1 (-120.0)") < text.index("CD-1 (-150.0)")
    assert "ESS of PCD-1 is below 10" in text and "not the likelihood's order" in text
    same = {"A": dict(test_ll=-1.0, ess=50.0, recon=1.0), "B": dict(test_ll=-2.0, ess=50.0, recon=2.0)}
    assert "ESS" not in B.model_sentence(same) and "not the likelihood" not in B.model_sentence(same)


def test_data_log_odds_are_clipped_logits_of_pixel_means():
    data = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    lo = B.data_log_odds(data, eps=1e-3)
    assert torch.allclose(torch.sigmoid(lo), torch.tensor([1 - 1e-3, 1e-3, 0.5]), atol=1e-6)


def test_defects_change_only_what_they_say():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(5, 1, 28, 28, generator=g) * 0.5
    sets = D.defects(clean, torch.rand(9, 1, 28, 28), g, patch=6)
    square = (sets["white square"] != clean).flatten(1).sum(1)
    assert (square > 0).all() and (square <= 36).all() and (sets["white square"].amax((1, 2, 3)) == 1).all()
    scratch = (sets["scratch"] != clean).flatten(1).sum(1)
    assert (scratch <= 24).all() and (scratch > 0).all()
    assert torch.equal(sets["rotated 90"], torch.rot90(clean, 1, (2, 3))) and len(sets["other data set"]) == 5


def test_best_lambda_and_the_psnr_table():
    grid = {0.1: {"noisy": (20.0, 0.1), "blur": (22.0, 0.1), "median 3x3": (21.0, 0.1),
                  "Langevin (A.7)": (19.0, 0.1), "lam=0": (23.0, 0.1), "lam=0.01": (25.0, 0.1)}}
    header, rows = D.psnr_rows(grid, (0.0, 0.01), temperature=1e-6)
    assert D.best_lambda(grid[0.1], (0.0, 0.01)) == 0.01
    assert rows[0][header.index("best lam")] == "0.01" and rows[0][-1] == "0.0001"


def test_calibration_bins_sum_to_the_data():
    probs = torch.softmax(torch.randn(500, 10, generator=torch.Generator().manual_seed(1)), 1)
    labels = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(2))
    c = calibration(probs, labels, n_bins=10)
    assert int(c.count.sum()) == 500 and 0 <= c.ece <= 1


def _rbm_record(within, ess, lls):
    rows = [dict(within_3se=w, ess=e) for w, e in zip(within, ess)]
    models = {k: dict(test_ll=v, ess=50.0) for k, v in lls.items()}
    return {"metrics": {"exact": {"exact_log_z": 1.0, "rows": rows}, "models": models}}


def test_rbm_verdicts_follow_their_rules():
    rec = _rbm_record([False, True], [2.0, 40.0], {"CD-1": -150.0, "CD-10": -120.0})
    exact, lik = B.paper_rows(rec)
    assert exact["verdict"] == "reproduced" and lik["verdict"] == "reproduced"   # the miss had ESS 2
    rec = _rbm_record([False, True], [20.0, 40.0], {"CD-1": -110.0, "CD-10": -120.0})
    exact, lik = B.paper_rows(rec)
    assert exact["verdict"] == "not reproduced" and lik["verdict"] == "not reproduced"


def test_denoising_and_jem_verdicts_follow_their_rules():
    from ebmlib.chapters import jem as J

    row = {"noisy": (10.0, 0), "blur_sigma": 1.0, "blur": (15.0, 0), "median 3x3": (14.0, 0), "lam=0": (16.0, 0)}
    worse = dict(row, **{"lam=0": (12.0, 0)})
    table = {"scratch": {"energy": 0.9, "PCA -log p": 0.8, "PCA reconstruction": 0.7}}
    d, a = D.paper_rows({"metrics": {"psnr": {"0.1": row, "0.5": worse}, "auroc": table}})
    assert d["verdict"] == "partly reproduced" and a["verdict"] == "reproduced"
    cls = {"mnist": {"JEM": dict(accuracy=0.985, ece=0.01), "plain": dict(accuracy=0.99, ece=0.02)}}
    auroc = {"JEM | energy | noise": 0.9, "JEM | 1 - max softmax | noise": 0.8, "plain | energy | noise": 0.7,
             "plain | 1 - max softmax | noise": 0.95}
    acc, ood = J.paper_rows({"metrics": {"classification": cls, "ood": {"mnist": {"sets": ["noise"], "auroc": auroc}}}})
    assert acc["verdict"] == "reproduced" and ood["verdict"] == "not reproduced"


def test_jem_ood_sentence_names_the_best_score_and_inverted_rows():
    from ebmlib.chapters import jem as J

    auroc = {"JEM | energy | noise": 0.99, "JEM | 1 - max softmax | noise": 0.1,
             "plain | energy | noise": 0.9, "plain | 1 - max softmax | noise": 0.95}
    text = J.ood_sentence({"mnist": {"sets": ["noise"], "auroc": auroc}})
    assert "JEM's energy (0.990)" in text and "JEM's 1 - max softmax on noise" in text
