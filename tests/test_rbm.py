"""RBMs against brute force: every joint state of a tiny RBM enumerated gives the exact free energy, Gibbs
conditionals, log Z and log-likelihood gradient; CD-k and AIS are checked against them."""
import itertools
import math

import pytest
import torch

from ebmlib.core.rbm import (BernoulliRBM, RBMTrainConfig, ais_log_z, cd_gradient, exact_gradient, exact_log_z,
                             train_rbm)


def tiny_rbm(n_visible=5, n_hidden=3, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(n_visible, n_hidden)
    with torch.no_grad():
        rbm.W.copy_(scale * torch.randn(n_visible, n_hidden, generator=g))
        rbm.b.copy_(scale * torch.randn(n_visible, generator=g))
        rbm.c.copy_(scale * torch.randn(n_hidden, generator=g))
    return rbm.double()


def states(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def joint_table(rbm):
    """log of the unnormalised joint over every (v, h): rows v, columns h."""
    V, H = states(rbm.n_visible), states(rbm.n_hidden)
    with torch.no_grad():
        return V, H, -torch.stack([rbm.energy(V, h.expand(len(V), -1)) for h in H], 1)


def test_free_energy_is_the_hidden_sum_of_the_joint():
    rbm = tiny_rbm()
    V, H, log_joint = joint_table(rbm)
    with torch.no_grad():
        assert torch.allclose(rbm.free_energy(V), -torch.logsumexp(log_joint, 1), atol=1e-10)


def test_block_conditionals_match_brute_force():
    rbm = tiny_rbm(scale=1.5)
    V, H, log_joint = joint_table(rbm)
    p = torch.exp(log_joint - torch.logsumexp(log_joint.flatten(), 0))
    p_v = p.sum(1, keepdim=True)
    brute_h = (p @ H) / p_v                                 # p(h_j = 1 | v) for every v
    p_h = p.sum(0)[:, None]
    brute_v = (p.T @ V) / p_h                               # p(v_i = 1 | h) for every h
    with torch.no_grad():
        assert torch.allclose(rbm.hidden_probs(V), brute_h, atol=1e-10)
        assert torch.allclose(rbm.visible_probs(H), brute_v, atol=1e-10)


def test_exact_log_z_against_the_full_sum_and_the_other_side():
    rbm = tiny_rbm(scale=2.0)
    _, _, log_joint = joint_table(rbm)
    assert exact_log_z(rbm, chunk=3) == pytest.approx(float(torch.logsumexp(log_joint.flatten(), 0)), abs=1e-9)
    with torch.no_grad():   # the same Z summed over visible states with F(v)
        assert exact_log_z(rbm) == pytest.approx(float(torch.logsumexp(-rbm.free_energy(states(5)), 0)), abs=1e-9)


def test_exact_gradient_equals_autograd_of_the_exact_log_likelihood():
    rbm = tiny_rbm()
    data = states(5)[[1, 6, 7, 20, 31]]

    def mean_log_p():
        V, H = states(5), states(3)
        log_z = torch.logsumexp(torch.stack([-rbm.energy(V, h.expand(32, -1)) for h in H]).flatten(), 0)
        return (-rbm.free_energy(data) - log_z).mean()

    auto = torch.autograd.grad(mean_log_p(), [rbm.W, rbm.b, rbm.c])
    exact = exact_gradient(rbm, data)
    for a, name in zip(auto, ("W", "b", "c")):
        assert torch.allclose(exact[name], a, atol=1e-10), name


def _expected_cd(rbm, data, k, repeats, seed=0):
    """E[CD-k gradient] over many independent chains per data vector."""
    g = torch.Generator().manual_seed(seed)
    grad, _ = cd_gradient(rbm, data.repeat(repeats, 1), k, generator=g)
    return grad


def test_cd_k_points_uphill_and_becomes_exact_as_k_grows():
    rbm = tiny_rbm(n_visible=6, n_hidden=3, scale=2.5, seed=4)
    data = states(6)[[3, 12, 33, 50, 63]]
    exact = torch.cat([exact_gradient(rbm, data)[n].flatten() for n in ("W", "b", "c")])
    errors = {}
    for k in (1, 5, 100):
        cd = _expected_cd(rbm, data, k, repeats=40000)
        est = torch.cat([cd[n].flatten() for n in ("W", "b", "c")])
        assert float(est @ exact) > 0   # the sign: CD ascends the likelihood
        errors[k] = float((est - exact).norm() / exact.norm())
    # CD-1 is biased (its chains have not forgotten the data); CD-100 is exact up to Monte Carlo error
    assert errors[1] > 0.1 and errors[100] < 0.02 and errors[1] > 10 * errors[100]
    with pytest.raises(ValueError, match="positive int"):
        cd_gradient(rbm, data, k=0)


def mean_log_likelihood(rbm, data):
    with torch.no_grad():
        return float((-rbm.free_energy(data)).mean()) - exact_log_z(rbm)


def test_training_raises_the_exact_likelihood_with_cd_and_pcd():
    g = torch.Generator().manual_seed(0)
    proto = torch.tensor([[1, 1, 1, 0, 0, 0, 1, 0], [0, 0, 0, 1, 1, 1, 0, 1]], dtype=torch.float32)
    data = proto[torch.randint(0, 2, (400,), generator=g)]
    data = torch.where(torch.rand(data.shape, generator=g) < 0.05, 1 - data, data)   # 5% bit flips
    for method in ("cd", "pcd"):
        rbm = BernoulliRBM(8, 4, generator=torch.Generator().manual_seed(1))
        before = mean_log_likelihood(rbm, data)   # 8 log(1/2) = -5.55: all 256 states equally likely
        train_rbm(rbm, data, RBMTrainConfig(method=method, k=1, lr=0.05, epochs=60, batch_size=20))
        after = mean_log_likelihood(rbm, data)
        # the data's own law (two patterns, 5% flips) has entropy log 2 + 8 H(0.05) = 2.28 nats
        assert after > before + 2.0 and after > -3.0, (method, before, after)


def test_ais_brackets_the_exact_log_z_within_its_error_bars():
    rbm = tiny_rbm(n_visible=12, n_hidden=10, scale=0.8, seed=2)
    truth = exact_log_z(rbm)
    res = ais_log_z(rbm, n_chains=400, n_temps=500, generator=torch.Generator().manual_seed(0))
    assert res.ess > 40
    assert abs(res.log_z - truth) < 4 * res.log_z_se + 1e-3, (res.log_z, truth, res.log_z_se)
    # no weights: the base is the RBM itself and every weight is 1
    flat = BernoulliRBM(12, 10).double()
    torch.nn.init.zeros_(flat.W)
    assert ais_log_z(flat, n_chains=10, n_temps=5).log_z == pytest.approx(exact_log_z(flat), abs=1e-9)


def test_ais_is_biased_low_on_average_never_high():
    rbm = tiny_rbm(n_visible=10, n_hidden=8, scale=1.5, seed=3)
    truth = exact_log_z(rbm)
    runs = [ais_log_z(rbm, n_chains=20, n_temps=50, generator=torch.Generator().manual_seed(s)).log_z
            for s in range(60)]
    mean, sd = sum(runs) / len(runs), torch.tensor(runs).std().item()
    # E[Z_hat] = Z, so E[log Z_hat] <= log Z (Jensen): the mean may not lie above the truth beyond its noise
    assert mean < truth + 3 * sd / math.sqrt(len(runs))


def test_bad_input_is_named():
    rbm = BernoulliRBM(4, 2)
    with pytest.raises(ValueError, match="binary"):
        train_rbm(rbm, torch.rand(10, 4), RBMTrainConfig())
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        exact_gradient(rbm, torch.ones(3, 5))
    with pytest.raises(ValueError, match="method must be"):
        RBMTrainConfig(method="pt")
    with pytest.raises(ValueError, match="n_hidden=30 is more than"):
        exact_log_z(BernoulliRBM(4, 30))
    with pytest.raises(ValueError, match="base_bias"):
        ais_log_z(rbm, base_bias=torch.zeros(3))
