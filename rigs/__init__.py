"""Rigs: a rig file says which meter, which driver, which link and which controls; a Rig runs them.

`rigs` is the only package that knows both the simulator and the driver. It imports neither until a
rig starts, so a rig file can be checked on a machine without a serial stack.
"""

from rigs.errors import CapabilityMissing, DriverProcessError, RigError, RigFileError, RigPortError
from rigs.evse_manager import BootResult, EvseManager, Session, status_name
from rigs.rig import Rig, driver_factory
from rigs.spec import CAPABILITIES, GROUND_TRUTH, RigSpec, load_rig

__all__ = [
    "CAPABILITIES",
    "GROUND_TRUTH",
    "BootResult",
    "CapabilityMissing",
    "DriverProcessError",
    "EvseManager",
    "Rig",
    "RigError",
    "RigFileError",
    "RigPortError",
    "RigSpec",
    "Session",
    "driver_factory",
    "load_rig",
    "status_name",
]
