"""Suite-wide settings: two CPU threads, as on the development and CI machines."""

from __future__ import annotations

import torch

torch.set_num_threads(2)
