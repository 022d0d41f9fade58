"""Meter models as plug-ins: a profile (simulator/profiles/*.toml, data) names its transaction protocol,
one module here (the command state machine and what the registers mean).

The registry maps a protocol name to its class lazily, so profile.py can check a name without importing
the protocols (which import the meter model, which imports the profile).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import MeterProtocol

PROTOCOLS = {
    "reference": "simulator.models.reference:ReferenceProtocol",
    "iskra": "simulator.models.iskra:IskraProtocol",
    "sdm630": "simulator.models.sdm630:Sdm630Protocol",
    "em580": "simulator.models.em580:Em580Protocol",
}


def protocol_class(name: str) -> type[MeterProtocol]:
    """The protocol class called name (profile field meter.protocol)."""
    module_name, _, class_name = PROTOCOLS[name].partition(":")
    cls: type[MeterProtocol] = getattr(importlib.import_module(module_name), class_name)
    return cls
