"""Hourly prices per tier; defaults are the AWS figures of Luger Table 4.1.

Luger Table 4.1 (on-demand EC2, t3.xlarge, 4 vCPU, 16 GiB): the edge server in a
Wavelength Zone (US East, Verizon NY) costs $0.224/h, the cloud server in US East (Ohio)
$0.1664/h. The user's own device is free by default. Replace any of them in the system
file under ``prices:``; a device's own ``price_per_hour`` overrides its tier's price.

Luger's own/rent strategies (eq. 4.4): under "own" the edge servers belong to the user and
bill nothing; under "rent" (the default) every tier bills its table price. The cost of a
request is the sum over tiers of busy seconds times the price per second.

>>> Prices().cost({"edge": 3600.0, "cloud": 1800.0}, strategy="own")
0.0832
>>> round(Prices().per_second("edge") * 3600, 4)
0.224
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgesplit.errors import InputError

LUGER_EDGE_PER_HOUR = 0.224
LUGER_CLOUD_PER_HOUR = 0.1664

Strategy = Literal["own", "rent"]


class Prices(BaseModel):
    """Price per hour of compute per tier, in ``currency``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = "USD"
    device_per_hour: float = Field(default=0.0, ge=0)
    edge_per_hour: float = Field(default=LUGER_EDGE_PER_HOUR, ge=0)
    cloud_per_hour: float = Field(default=LUGER_CLOUD_PER_HOUR, ge=0)
    source: str = "Luger thesis Table 4.1 (AWS EC2 on-demand t3.xlarge, Wavelength vs region)"

    @staticmethod
    def owned(tier: str, strategy: str | None = None) -> bool:
        """Whether ``strategy`` makes a ``tier`` machine the user's own (Luger eq. 4.4)."""
        if strategy not in (None, "own", "rent"):
            raise InputError(f"--strategy must be own or rent, not {strategy!r}")
        return tier == "edge" and strategy == "own"

    def per_hour(self, tier: str, strategy: str | None = None) -> float:
        """Billing rate of a ``tier`` machine under ``strategy`` (None: the table price)."""
        if self.owned(tier, strategy):
            return 0.0
        table = {"device": self.device_per_hour, "edge": self.edge_per_hour}
        if tier not in (*table, "cloud"):
            raise InputError(f"tier {tier!r} has no price; tiers are device, edge, cloud")
        return table.get(tier, self.cloud_per_hour)

    def per_second(self, tier: str, strategy: str | None = None) -> float:
        return self.per_hour(tier, strategy) / 3600.0

    def cost(self, seconds: Mapping[str, float], strategy: str | None = None) -> float:
        """Luger eq. 4.4: busy seconds per tier times that tier's price per second."""
        return sum(s * self.per_second(tier, strategy) for tier, s in seconds.items())
