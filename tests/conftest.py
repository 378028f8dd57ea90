"""Shared test settings."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The unit tests use tiny tensors: one intra-op thread avoids OpenMP spin-waiting, which made the suite
    ~10x slower on a 2-core machine shared with other work, and makes results independent of the core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
