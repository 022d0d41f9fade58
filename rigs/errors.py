"""The rig's exceptions: one tree rooted in RigError."""


class RigError(Exception):
    """Base of every error the rig raises."""


class RigFileError(RigError, ValueError):
    """A rig file is wrong; the message names the file and the field."""


class RigPortError(RigError):
    """The rig's serial port cannot be opened (e.g. no such device on this machine)."""


class CapabilityMissing(RigError):
    """A scenario needs a capability (power_control, link_control, ...) the rig does not have."""


class BundleError(RigError):
    """A certification bundle cannot be made or read (not a .tar.gz, no manifest, no summary.json)."""


class DriverProcessError(RigError):
    """An out-of-process driver (driver.command) crashed, hung, printed garbage or answered out of
    schema; the message names the command, what it did, during which call, and the end of its stderr."""
