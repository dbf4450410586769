"""edgesplit.

``edgesplit.Deployment`` (a plan running on a topology, the device-side Python API) and
``edgesplit.Result`` are imported on first use, so ``import edgesplit`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Deployment", "Result"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgesplit.runtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgesplit' has no attribute {name!r}")
