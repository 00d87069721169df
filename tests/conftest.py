"""Shared pytest set-up: two cores, deterministic seeds, no network."""
import os
import random

import numpy as np
import pytest
import torch

# CI machines have 2 cores; more threads only oversubscribe them.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
