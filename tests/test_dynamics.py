"""Dynamics models of the hand chapter (ebmlib.chapters.robot_hand) and the Frechet distance (ebmlib.core.metrics).

The models are tested on synthetic trajectories of the hand's shapes (no MuJoCo needed): a random walk whose
steps have a known law, so a trained model can be checked against the truth.
"""
import numpy as np
import pytest
import torch

from ebmlib.chapters import robot_hand as D
from ebmlib.core.metrics import frechet_distance, gaussian_frechet
from hand_walk import walk  # noqa: E402


# ---------------------------------------------------------------------------------------------------- Frechet
def _random_cov(d, rng, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


def test_frechet_closed_form_for_diagonal_gaussians():
    """Diagonal covariances: FD = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_closed_form_rotated_and_scaled():
    """The same Gaussians rotated together keep their distance; C2 = k^2 C1 gives (1 - k)^2 tr C1."""
    rng = np.random.default_rng(1)
    d = 6
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.2, 2, d), rng.uniform(0.2, 2, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)
    c = _random_cov(d, rng)
    assert frechet_distance(np.zeros(d), c, np.zeros(d), 9 * c) == pytest.approx(4 * np.trace(c), rel=1e-8)
    assert frechet_distance(mu1, c, mu1, c) == pytest.approx(0.0, abs=1e-8)


def test_frechet_symmetric_and_handles_singular_covariances():
    rng = np.random.default_rng(2)
    d = 8
    c1, c2 = _random_cov(d, rng), _random_cov(d, rng, rank=2)   # c2 rank 2: sqrtm(c1 c2) is ill-conditioned
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    f12, f21 = frechet_distance(m1, c1, m2, c2), frechet_distance(m2, c2, m1, c1)
    assert isinstance(f12, float) and np.isfinite(f12) and f12 == pytest.approx(f21, rel=1e-6)
    # a point mass against a Gaussian: |dmu|^2 + tr C
    assert frechet_distance(m1, np.zeros((d, d)), m2, c1) == pytest.approx(((m1 - m2) ** 2).sum() + np.trace(c1), rel=1e-6)


def test_gaussian_frechet_from_samples():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=gen)
    y = 2.0 * torch.randn(20000, 3, generator=gen) + torch.tensor([1.0, 0.0, 0.0])
    # N(0, I) vs N((1,0,0), 4I): 1 + 3 * (2 - 1)^2 = 4
    assert gaussian_frechet(x, y) == pytest.approx(4.0, rel=0.03)
    assert gaussian_frechet(x[:10000], x[10000:]) < 0.01


def test_frechet_bad_input():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_frechet(np.full((4, 2), np.nan), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_frechet(np.zeros((1, 2)), np.zeros((4, 2)))


# ---------------------------------------------------------------------------------------------------- models
def _walk(n=64, length=12, seed=0, drift=0.0):
    return walk(n, length, seed, drift)


def test_normaliser_units_and_round_trip():
    data = _walk()
    norm = D.Normaliser.fit(data["states"])
    s = torch.as_tensor(data["states"])
    flat = norm.state(s.reshape(-1, 31))
    assert flat.mean(0).abs().max() < 1e-4 and (flat.std(0) - 1).abs().max() < 1e-3
    z, ctx = D.transition_tensors(data, norm, conditional=True)
    assert z.shape == (64 * 12, 31) and ctx.shape == (64 * 12, 51)
    assert (z.pow(2).mean(0) - 1).abs().max() < 1e-3      # unit RMS displacement per coordinate
    s_t, s_next = s[:, :-1].reshape(-1, 31), s[:, 1:].reshape(-1, 31)
    torch.testing.assert_close(norm.next_state(s_t, z), s_next, atol=1e-5, rtol=1e-5)
    _, ctx_u = D.transition_tensors(data, norm, conditional=False)
    assert ctx_u.shape == (64 * 12, 31)
    with pytest.raises(ValueError, match="shape"):
        D.Normaliser.fit(np.zeros((4, 31)))


def test_network_shapes_and_spectral_norm():
    e = D.TransitionEnergy(conditional=True)
    fc = D.FCDynamics(conditional=False)
    assert e(torch.randn(5, 31), torch.randn(5, 51)).shape == (5,)
    assert fc(torch.randn(5, 31)).shape == (5, 31)
    # 3 hidden layers of 128 (section 5.1)
    assert [m.out_features for m in fc.net if isinstance(m, torch.nn.Linear)] == [128, 128, 128, 31]
    # the hidden FC layers are spectrally normalised: largest singular value about 1 after a few power iterations
    for _ in range(30):
        fc(torch.randn(8, 31))
    fc.eval()
    linear = [m for m in fc.net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for m in linear[:-1]:
            assert float(torch.linalg.matrix_norm(m.weight, ord=2)) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="context must have shape"):
        e(torch.randn(5, 31), torch.randn(5, 31))
    with pytest.raises(ValueError, match="context must have shape"):
        fc(torch.randn(5, 51))


def _fit(data, norm, kind, conditional, n_iters, **kw):
    """Train one recipe directly (no checkpoint files)."""
    from ebmlib.core.recipes import train
    recipe = D.DynamicsRecipe(name=f"t_{kind}", kind=kind, conditional=conditional, n_iters=n_iters, **kw)
    t = train(recipe, device="cpu", progress=False, data=data, norm=norm)
    return t.model, t.history


def test_fc_learns_the_conditional_step_and_rolls_out():
    torch.set_num_threads(1)
    data = _walk(n=128)
    norm = D.Normaliser.fit(data["states"])
    model, hist = _fit(data, norm, "fc", True, 300, batch_size=128, lr=3e-3)
    z, ctx = D.transition_tensors(data, norm, conditional=True)
    with torch.no_grad():
        mse = (model.net(ctx) - z).pow(2).mean().item()
    assert mse < 0.3 < hist[0]["loss"]   # explains most of the unit-variance displacement
    traj = D.rollout(model, data["states"][:, 0], 12, actions=data["actions"])
    assert traj.shape == (128, 13, 31)
    torch.testing.assert_close(traj[:, 0], torch.as_tensor(data["states"][:, 0]))
    with pytest.raises(ValueError, match="needs actions"):
        D.rollout(model, data["states"][:, 0], 3)
    with pytest.raises(ValueError, match="horizon"):
        D.rollout(model, data["states"][:, 0], -1, actions=data["actions"])


def test_ebm_trains_and_samples_the_step_distribution():
    """A walk with a constant drift: after a short run the EBM's Langevin samples of the step sit near the drift,
    much closer than the N(0, 1) noise they start from, and still differ from one another."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    states = np.cumsum(np.concatenate([rng.normal(size=(128, 1, 31)), 0.05 + 0.01 * rng.normal(size=(128, 8, 31))], 1), 1)
    data = {"states": states.astype(np.float32), "actions": np.zeros((128, 8, D.ACTION_DIM), np.float32)}
    norm = D.Normaliser.fit(data["states"])
    sampling = dict(n_steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.05, init_std=1.0)
    model, hist = _fit(data, norm, "ebm", False, 100, sampling=sampling, batch_size=64, lr=3e-3)
    assert len(hist) == 100 and all(np.isfinite(h["loss"]) for h in hist)
    gen = torch.Generator().manual_seed(0)
    s = torch.as_tensor(data["states"][:, 3])
    pred = model.predict(s, generator=gen)
    z_pred = norm.displacement(s, pred)
    z_true = norm.displacement(s, torch.as_tensor(data["states"][:, 4]))
    z_start = torch.randn(z_true.shape, generator=gen)
    err_model = (z_pred - z_true).pow(2).mean().item()
    err_noise = (z_start - z_true).pow(2).mean().item()
    assert err_model < 0.3 * err_noise
    # two predictions from the same states differ: the EBM samples (the FC would not)
    assert not torch.allclose(model.predict(s, generator=gen), pred)
    with pytest.raises(ValueError, match="takes no actions"):
        model.predict(s, torch.zeros(128, D.ACTION_DIM))


def test_curves_and_bad_input():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(50, 4, 31))
    assert D.frechet_curve(truth, truth) == pytest.approx(np.zeros(4), abs=1e-8)
    shifted = truth + 1.0
    np.testing.assert_allclose(D.frechet_curve(shifted, truth), 31.0, rtol=1e-6)    # |mean shift|^2 = 31
    np.testing.assert_allclose(D.mse_curve(shifted, truth), 1.0)
    with pytest.raises(ValueError, match="shape"):
        D.frechet_curve(truth[:, :3], truth)
    with pytest.raises(ValueError, match="pairs"):
        D.mse_curve(truth[:10], truth)


def test_load_or_generate_caches_the_hand_data(tmp_path):
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium_robotics")
    data, how = D.load_or_generate(2, seed=3, length=3, root=tmp_path, progress=False)
    assert how.startswith("generated") and data["states"].shape == (2, 4, 31)
    again, how2 = D.load_or_generate(2, seed=3, length=3, root=tmp_path, progress=False)
    assert how2.startswith("loaded")
    np.testing.assert_array_equal(again["states"], data["states"])


def test_render_rows_in_a_child_process():
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium_robotics")
    from ebmlib.data import hand
    states = hand.generate_trajectories(1, seed=0, length=2, progress=False)["states"][0]
    with pytest.raises(ValueError, match=r"\(T, 31\)"):
        D.render_rows({"bad": states[:, :30]})
    try:
        frames = D.render_rows({"a": states, "b": states[:1]}, width=48, height=32)
    except RuntimeError as err:  # no EGL / OSMesa here: rendering is optional
        pytest.skip(f"offscreen rendering unavailable: {str(err)[:200]}")
    assert frames["a"].shape == (3, 32, 48, 3) and frames["b"].shape == (1, 32, 48, 3)
    assert frames["a"].dtype == np.uint8 and frames["a"].std() > 5
