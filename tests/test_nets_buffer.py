"""Energy networks (shapes, conditioning, spectral norm) and the replay buffer (95/5 rule, FIFO, state)."""
import pytest
import torch

from ebmlib.core.buffer import ReplayBuffer
from ebmlib.core.nets import MLPEnergy, MNISTConvEnergy, count_parameters


def test_mlp_energy_shapes_and_errors():
    model = MLPEnergy(in_dim=3, hidden=16, depth=2)
    assert model(torch.randn(5, 3)).shape == (5,)
    with pytest.raises(ValueError, match=r"shape \(N, 3\).*\(5, 2\)"):
        model(torch.randn(5, 2))
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
        MLPEnergy(act="tanhh")


def test_mnist_cnn_matches_the_release_size_and_shapes():
    # the paper's release: ~1.25M parameters at width 64
    assert 1.2e6 < count_parameters(MNISTConvEnergy(width=64)) < 1.3e6
    model = MNISTConvEnergy(width=8)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3,)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model(torch.rand(3, 1, 32, 32))


@pytest.mark.parametrize("make", [lambda: MLPEnergy(hidden=16, depth=2, n_classes=3),
                                  lambda: MNISTConvEnergy(width=8, n_classes=3)])
def test_conditional_energy_depends_on_the_label(make):
    torch.manual_seed(0)
    model = make()
    x = torch.rand(4, *model.input_shape)
    for cond in model.cond:  # move gains/biases off their identity initialisation
        torch.nn.init.normal_(cond.bias.weight)
    e0, e1 = model(x, torch.zeros(4, dtype=torch.long)), model(x, torch.ones(4, dtype=torch.long))
    assert e0.shape == (4,) and not torch.allclose(e0, e1)
    with pytest.raises(ValueError, match="pass labels"):
        model(x)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        model(x, torch.full((4,), 3))
    with pytest.raises(ValueError, match="integer tensor"):
        model(x, torch.zeros(4))


def test_conditional_network_starts_as_the_unconditional_one():
    """Gains start at 1 and biases at 0, so every label gives the same energy at initialisation."""
    torch.manual_seed(0)
    model = MNISTConvEnergy(width=8, n_classes=10, spectral_norm=False)
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(model(x, torch.tensor([0, 0])), model(x, torch.tensor([7, 7])))


def test_spectral_norm_bounds_each_layer():
    torch.manual_seed(0)
    model = MLPEnergy(hidden=32, depth=3, spectral_norm=True)
    for _ in range(30):  # power iterations run in training-mode forward passes
        model(torch.randn(8, 2))
    for layer in model.layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.02)
    unnormalised = MLPEnergy(hidden=32, depth=3, spectral_norm=False)
    assert not hasattr(unnormalised.layers[0], "parametrizations")


def test_buffer_draws_95_percent_from_storage():
    buf = ReplayBuffer(capacity=1000, sample_shape=(2,), low=10.0, high=11.0)
    buf.push(torch.zeros(1000, 2))
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([buf.initial_states(500, gen) for _ in range(40)])
    fresh = (x[:, 0] >= 10).float().mean().item()
    # binomial standard error at n=20000, p=0.05: 0.0015
    assert abs(fresh - 0.05) < 5 * 0.0015
    assert ((x[:, 0] == 0) | ((x[:, 0] >= 10) & (x[:, 0] <= 11))).all()


def test_buffer_is_uniform_until_it_holds_a_batch():
    buf = ReplayBuffer(capacity=100, sample_shape=(1,))
    buf.push(torch.full((10, 1), -5.0))
    x = buf.initial_states(50, torch.Generator().manual_seed(0))
    assert (x >= 0).all(), "with fewer stored samples than the batch, all chains start from uniform noise"


def test_buffer_is_a_fifo_ring():
    buf = ReplayBuffer(capacity=5, sample_shape=(1,))
    buf.push(torch.arange(3.0).view(-1, 1))
    buf.push(torch.arange(3.0, 7.0).view(-1, 1))   # 0..6 pushed: 0 and 1 overwritten
    assert len(buf) == 5
    assert sorted(buf.storage.view(-1).tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    buf.push(torch.arange(10.0, 22.0).view(-1, 1))  # more than the capacity at once: the newest 5 survive
    assert sorted(buf.storage.view(-1).tolist()) == [17.0, 18.0, 19.0, 20.0, 21.0]


def test_buffer_state_round_trip_and_errors():
    buf = ReplayBuffer(capacity=4, sample_shape=(2,))
    buf.push(torch.randn(6, 2))
    other = ReplayBuffer(capacity=4, sample_shape=(2,))
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.storage, buf.storage) and other.next_slot == buf.next_slot
    with pytest.raises(ValueError, match="capacity 4"):
        ReplayBuffer(capacity=8, sample_shape=(2,)).load_state_dict(buf.state_dict())
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3, 3\)"):
        buf.push(torch.randn(3, 3))
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        ReplayBuffer(capacity=0, sample_shape=(2,))
    with pytest.raises(ValueError, match="replay_fraction"):
        ReplayBuffer(capacity=3, sample_shape=(2,), replay_fraction=1.2)


def test_buffer_newest_is_newest_first_before_and_after_wrapping():
    buf = ReplayBuffer(5, (1,))
    buf.push(torch.arange(3.0)[:, None])
    assert buf.newest(2)[:, 0].tolist() == [2.0, 1.0]
    buf.push(torch.arange(3.0, 8.0)[:, None])        # 8 pushed into 5 slots: holds 3..7
    assert buf.newest(3)[:, 0].tolist() == [7.0, 6.0, 5.0]
    assert buf.newest(9)[:, 0].tolist() == [7.0, 6.0, 5.0, 4.0, 3.0]
