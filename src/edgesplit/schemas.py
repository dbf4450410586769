"""Every input file type and the pydantic model that validates it.

``edgesplit schema NAME`` prints ``model_json_schema()`` of the class named here. Entries
are import paths so that listing schemas imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgesplit.errors import InputError

SCHEMAS: dict[str, str] = {
    "cluster": "edgesplit.cluster.config:ClusterConfig",
    "conditions": "edgesplit.runtime.conditions:ConditionSchedule",
    "earlyexit": "edgesplit.earlyexit.instance:EarlyExitInstance",
    "multidevice": "edgesplit.multidevice.instance:MultiDeviceInstance",
    "plan": "edgesplit.plan.types:PlanFile",
    "predictor": "edgesplit.predict.store:PredictorFile",
    "profile": "edgesplit.predict.profile:Profile",
    "system": "edgesplit.system.model:System",
    "tarnawski": "edgesplit.plan.tarnawski:TarnawskiInput",
    "tarnawski-placement": "edgesplit.plan.tarnawski:TarnawskiPlacement",
    "topology": "edgesplit.system.topology:Topology",
}


def schema(name: str) -> dict[str, Any]:
    if name not in SCHEMAS:
        raise InputError(f"unknown schema {name!r}; choose one of {', '.join(sorted(SCHEMAS))}")
    module_name, _, cls_name = SCHEMAS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    result: dict[str, Any] = cls.model_json_schema()
    return result
