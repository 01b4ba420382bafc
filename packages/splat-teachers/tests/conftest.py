"""Test-process settings for splat-teachers."""

import torch

# The tests run many small convolutions; with several OpenMP threads on a busy 2-core machine each op pays a
# thread wake-up (~20 ms instead of ~0.2 ms). One thread keeps the suite fast and its timing predictable.
torch.set_num_threads(1)
