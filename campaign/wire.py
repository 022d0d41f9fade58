"""The campaign's cable: the simulator's forwarding core between two ptys that outlive meter-sim.

meter-sim serves `meter_path` (`meter-sim --port`), a pty this wire keeps open, so a meter-sim killed
and started again is on the same device, and the driver keeps its own port (`path`) for good. The
Forwarder between the two masters carries the trigger hook (campaign/trigger.py) that cuts a frame
after byte k and blocks the wire until the fault is healed.
"""

from __future__ import annotations

import contextlib
import os
import termios

from campaign.trigger import Trigger, Triggers
from rigs.frames import RequestKind
from simulator.forwarding import Forwarder
from simulator.ptys import PtyPair

FAULT = "campaign-fault"


class FaultWire:
    """driver pty <-> Forwarder(+Triggers) <-> meter pty. Use as a context manager or close()."""

    def __init__(self, kind_of: RequestKind) -> None:
        self._meter = PtyPair()
        self._driver = PtyPair()
        self.meter_path = self._meter.path
        self.path = self._driver.path
        self._forwarder = Forwarder(self._meter.master, self._driver.master, name="campaign-wire")
        self.triggers = Triggers(kind_of, self.block)
        self._forwarder.before_delivery(self.triggers)
        self._forwarder.start()
        self._closed = False

    def arm(self, trigger: Trigger, fire: object) -> None:
        """Fire once at trigger (see Triggers.arm)."""
        self.triggers.arm(trigger, fire)  # type: ignore[arg-type]

    def block(self) -> None:
        """Drop every byte both ways until release()."""
        self._forwarder.block(FAULT)

    def release(self) -> None:
        """Forward again after a fault: no half frame or stale byte of before the fault survives it."""
        self.flush()
        self.triggers.reset()
        self._forwarder.unblock(FAULT)

    @property
    def blocked(self) -> bool:
        """True while a fault holds the wire."""
        return FAULT in self._forwarder.blocked

    def flush(self) -> None:
        """Discard what waits in the meter's pty: a request the killed meter had not read yet is lost with
        it, as on a real bus, instead of being answered by the meter that boots next."""
        with contextlib.suppress(OSError):
            fd = os.open(self.meter_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                termios.tcflush(fd, termios.TCIOFLUSH)
            finally:
                os.close(fd)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Bytes forwarded and dropped each way."""
        return {"forwarded": dict(self._forwarder.forwarded), "dropped": dict(self._forwarder.dropped)}

    def close(self) -> None:
        """Stop forwarding and close both ptys (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._forwarder.close()
        self._meter.close()
        self._driver.close()

    def __enter__(self) -> FaultWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
