"""The system description: devices (tiers, compute, clock, memory, price, power), links
(bandwidth + RTT, or Shannon) and the price table, loaded by :func:`load_system`."""

from edgesplit.system.model import ComputeSpec, Device, Link, Shannon, System, Tier, load_system
from edgesplit.system.power import PowerModel
from edgesplit.system.prices import LUGER_CLOUD_PER_HOUR, LUGER_EDGE_PER_HOUR, Prices

__all__ = [
    "LUGER_CLOUD_PER_HOUR",
    "LUGER_EDGE_PER_HOUR",
    "ComputeSpec",
    "Device",
    "Link",
    "PowerModel",
    "Prices",
    "Shannon",
    "System",
    "Tier",
    "load_system",
]
