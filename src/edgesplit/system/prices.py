"""Hourly prices per tier; defaults are the AWS figures of Luger Table 4.1.

Luger Table 4.1 (on-demand EC2, t3.xlarge, 4 vCPU, 16 GiB): the edge server in a
Wavelength Zone (US East, Verizon NY) costs $0.224/h, the cloud server in US East (Ohio)
$0.1664/h. The user's own device is free by default. Replace any of them in the system
file under ``prices:``; a device's own ``price_per_hour`` overrides its tier's price.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

LUGER_EDGE_PER_HOUR = 0.224
LUGER_CLOUD_PER_HOUR = 0.1664


class Prices(BaseModel):
    """Price per hour of compute per tier, in ``currency``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = "USD"
    device_per_hour: float = Field(default=0.0, ge=0)
    edge_per_hour: float = Field(default=LUGER_EDGE_PER_HOUR, ge=0)
    cloud_per_hour: float = Field(default=LUGER_CLOUD_PER_HOUR, ge=0)
    source: str = "Luger thesis Table 4.1 (AWS EC2 on-demand t3.xlarge, Wavelength vs region)"

    def per_hour(self, tier: str) -> float:
        return {
            "device": self.device_per_hour,
            "edge": self.edge_per_hour,
            "cloud": self.cloud_per_hour,
        }[tier]
