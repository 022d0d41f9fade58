"""Pseudo-terminals made in Python (os.openpty): the master fd for us, the slave path for a serial client."""

from __future__ import annotations

import contextlib
import os
import tty

from .errors import PortError


class PtyPair:
    """One pty: `master` is our end (raw fd, non-blocking), `path` the device a serial client opens.

    We keep the slave fd open for the pty's lifetime so the master never sees EIO/HUP when a client
    closes and reopens the path.
    """

    def __init__(self) -> None:
        try:
            self.master, self._slave = os.openpty()
        except OSError as exc:
            raise PortError(f"cannot create a pty: {exc.strerror}") from None
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.closed = False

    def close(self) -> None:
        """Close both ends (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PtyPair(path={self.path!r})"
