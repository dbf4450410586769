"""The system description: devices (tiers, compute, clock, memory, price, power), links
(bandwidth or Shannon, RTT, codecs allowed), the price table and power models, loaded by
:func:`load_system`."""

from edgesplit.system.link import CODECS, Link, Shannon
from edgesplit.system.model import ComputeSpec, Device, LinkEntry, System, Tier, load_system
from edgesplit.system.power import PowerModel
from edgesplit.system.prices import LUGER_CLOUD_PER_HOUR, LUGER_EDGE_PER_HOUR, Prices

__all__ = [
    "CODECS",
    "LUGER_CLOUD_PER_HOUR",
    "LUGER_EDGE_PER_HOUR",
    "ComputeSpec",
    "Device",
    "Link",
    "LinkEntry",
    "PowerModel",
    "Prices",
    "Shannon",
    "System",
    "Tier",
    "load_system",
]
