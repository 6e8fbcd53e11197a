"Shared pytest fixtures."
import pytest


@pytest.fixture(scope='module')
def one_torch_thread():
    "Small models and batches on a shared 2-core machine: one intra-op thread avoids oversubscription stalls."
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
