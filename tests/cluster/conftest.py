"""Make tests/cluster/cluster_helpers.py importable (tests run in importlib mode)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
