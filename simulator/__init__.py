"""The simulated Eichrecht meter: SimPy model, register map profiles, Modbus RTU server, serial links."""

from .control import ControlClient
from .errors import ControlError, PortError, ProfileError, SimulatorError, StateError
from .forwarding import Forwarder
from .grid import Grid
from .link import LinkProxy
from .load import LoadProfile
from .meter import MeterModel
from .nvram import Nvram
from .profile import Profile, load_profile
from .ptys import PtyPair
from .registers import RegisterMap
from .runtime import MeterSim
from .server import MeterServer

__all__ = [
    "ControlClient",
    "ControlError",
    "Forwarder",
    "Grid",
    "LinkProxy",
    "LoadProfile",
    "MeterModel",
    "MeterServer",
    "MeterSim",
    "Nvram",
    "PortError",
    "Profile",
    "ProfileError",
    "PtyPair",
    "RegisterMap",
    "SimulatorError",
    "StateError",
    "load_profile",
]
