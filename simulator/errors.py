"""The simulator's exceptions: one tree rooted in SimulatorError."""


class SimulatorError(Exception):
    """Base of every error the simulator raises."""


class ProfileError(SimulatorError, ValueError):
    """A meter profile file is wrong; the message names the file and the field."""


class StateError(SimulatorError):
    """The non-volatile state file cannot be read or written."""


class PortError(SimulatorError):
    """A serial port or pty cannot be opened or used."""


class ControlError(SimulatorError):
    """A control command is malformed or the control socket does not answer."""


class LaunchError(SimulatorError):
    """meter-sim could not be started as a subprocess (no device path, no control socket); names why."""


class MetadataError(SimulatorError, ValueError):
    """OCMF metadata a simulated meter refuses (Iskra: signature status 252 or 253); .status is the code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
