"""Planning: Problem and Plan types, and one module per algorithm (``solve(...) -> Plan``)."""

from edgesplit.plan.types import Plan

__all__ = ["Plan"]
