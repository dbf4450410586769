"""Device power models: a constant draw, or an 11-point utilisation curve.

The curve follows the SPEC-power style of reporting watts at 0 %, 10 %, ..., 100 %
utilisation; power at any utilisation in between is linearly interpolated (O(1)).
Energy is power × time (joules = watts × seconds).

>>> PowerModel(curve_w=[10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]).watts(0.25)
35.0
>>> PowerModel(constant_w=4.0).joules(0.5, seconds=2.0)
8.0

Named curves: :data:`RASPBERRY_PI_4B_4GB` and :data:`RASPBERRY_PI_4B_8GB`, the hosts of
Tuli 2021 §4 ("Setup": eight 4 GB and eight 8 GB Raspberry Pi 4B nodes, whose power the
paper takes from SPEC power models rather than a watt-meter); the cluster simulator's
defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

CURVE_POINTS = 11


class PowerModel(BaseModel):
    """Either ``constant_w`` or ``curve_w`` (11 values, watts at 0, 10, ..., 100 % load)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    constant_w: float | None = Field(default=None, ge=0, description="constant draw in watts")
    curve_w: list[float] | None = Field(
        default=None, description="watts at 0,10,...,100 % utilisation (11 values)"
    )

    @model_validator(mode="after")
    def _one_form(self) -> PowerModel:
        if (self.constant_w is None) == (self.curve_w is None):
            raise ValueError("give exactly one of constant_w or curve_w")
        if self.curve_w is not None:
            if len(self.curve_w) != CURVE_POINTS:
                raise ValueError(
                    f"curve_w needs {CURVE_POINTS} values (0 %..100 % in 10 % steps), "
                    f"got {len(self.curve_w)}"
                )
            if any(w < 0 for w in self.curve_w):
                raise ValueError("curve_w values must be non-negative watts")
        return self

    def watts(self, utilisation: float = 1.0) -> float:
        """Power at ``utilisation`` in [0, 1] (clamped), interpolated between curve points."""
        if self.constant_w is not None:
            return self.constant_w
        assert self.curve_w is not None
        u = min(1.0, max(0.0, utilisation)) * (CURVE_POINTS - 1)
        lo = min(int(u), CURVE_POINTS - 2)
        frac = u - lo
        return self.curve_w[lo] * (1.0 - frac) + self.curve_w[lo + 1] * frac

    def joules(self, utilisation: float, seconds: float) -> float:
        return self.watts(utilisation) * seconds

    @property
    def peak_w(self) -> float:
        """Power at full load (100 % utilisation)."""
        return self.watts(1.0)


RASPBERRY_PI_4B_4GB = PowerModel(
    curve_w=[2.45, 2.78, 2.90, 3.03, 3.65, 3.66, 3.69, 3.71, 3.72, 4.14, 4.75]
)
RASPBERRY_PI_4B_8GB = PowerModel(
    curve_w=[2.65, 2.98, 3.10, 3.23, 3.45, 3.86, 3.89, 4.01, 4.12, 4.34, 5.05]
)
