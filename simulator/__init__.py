"""The simulated Eichrecht meter: SimPy model, register map profiles, Modbus RTU server, serial links."""

from .control import ControlClient
from .errors import (
    ControlError,
    LaunchError,
    MetadataError,
    PortError,
    ProfileError,
    SimulatorError,
    StateError,
)
from .forwarding import Forwarder
from .grid import Grid
from .link import LinkProxy
from .load import LoadProfile
from .meter import MeterModel
from .nvram import Nvram
from .process import MeterSimProcess, meter_sim_command
from .profile import Profile, known_models, load_model, load_profile
from .ptys import PtyPair
from .registers import RegisterMap
from .runtime import MeterSim
from .server import MeterServer

__all__ = [
    "ControlClient",
    "ControlError",
    "Forwarder",
    "Grid",
    "LaunchError",
    "LinkProxy",
    "LoadProfile",
    "MetadataError",
    "MeterModel",
    "MeterServer",
    "MeterSim",
    "MeterSimProcess",
    "Nvram",
    "PortError",
    "Profile",
    "ProfileError",
    "PtyPair",
    "RegisterMap",
    "SimulatorError",
    "StateError",
    "known_models",
    "load_model",
    "load_profile",
    "meter_sim_command",
]
