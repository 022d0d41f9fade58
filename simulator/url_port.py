"""A pyserial URL port (rfc2217://host:port, socket://host:port) as a file descriptor LinkProxy can poll.

The forwarding core copies bytes between file descriptors with poll(). A meter behind ser2net has none
that poll() could use: pyserial's RFC 2217 client reads its socket in a thread of its own and queues the
bytes. UrlPort opens the URL and copies bytes between it and one end of a local socket pair, whose other
end is the descriptor the proxy polls. When the connection breaks (ser2net restarted, the network
gone), bytes towards the meter are dropped, as on a cut cable, and the port is reopened every
`reconnect_interval` seconds until it answers again or the UrlPort is closed.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading

import serial

from .errors import PortError

log = logging.getLogger(__name__)

READ_SLICE = 0.05  # seconds one read of the URL port waits; bounds how long close() waits for the thread
CHUNK = 4096


def _descriptor(port: serial.SerialBase) -> int | None:
    try:
        return port.fileno()
    except (AttributeError, OSError, serial.SerialException):  # io.UnsupportedOperation is an OSError
        return None


def is_url(port: str) -> bool:
    """True for a pyserial URL rather than a device path."""
    return "://" in port


class UrlPort:
    """The URL port `url`, bridged to a local socket: `fileno()` is what the forwarding core polls."""

    def __init__(self, url: str, baudrate: int = 19200, parity: str = "E", stopbits: float = 1,
                 bytesize: int = 8, reconnect_interval: float = 0.2) -> None:
        self.url = url
        self._settings = {"baudrate": baudrate, "parity": parity, "stopbits": stopbits, "bytesize": bytesize}
        self.reconnect_interval = reconnect_interval
        self._port: serial.SerialBase | None = self._open()  # PortError now if it is not there at all
        self._outer, self._inner = socket.socketpair()
        self._outer.setblocking(False)
        self._inner.settimeout(READ_SLICE)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.reconnects = 0
        self.dropped = 0
        self._threads = [
            threading.Thread(target=self._from_port, name=f"UrlPort({url}) from port", daemon=True),
            threading.Thread(target=self._to_port, name=f"UrlPort({url}) to port", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def fileno(self) -> int:
        return self._outer.fileno()

    @property
    def connected(self) -> bool:
        return self._port is not None

    def _open(self) -> serial.SerialBase:
        # No write timeout: pyserial's RFC 2217 client refuses one (NotImplementedError).
        try:
            port = serial.serial_for_url(self.url, timeout=READ_SLICE, **self._settings)
        except (serial.SerialException, ValueError, OSError, NotImplementedError) as exc:
            raise PortError(f"cannot open serial port {self.url!r}: {exc}") from None
        if _descriptor(port) is not None:
            port.timeout = 0  # waited on with select(); cheap to set on socket:// (not on rfc2217://)
        return port

    @staticmethod
    def _read(port: serial.SerialBase) -> bytes:
        """What the port has, waiting at most READ_SLICE for it.

        socket:// has a descriptor but says only 0 or 1 for in_waiting: wait on the descriptor, then one
        non-blocking read takes all there is. rfc2217:// has none but counts its queue exactly."""
        fd = _descriptor(port)
        if fd is not None:
            if not select.select([fd], [], [], READ_SLICE)[0]:
                return b""
            return port.read(CHUNK)  # opened with timeout 0: what is there, no waiting
        data = port.read(max(port.in_waiting, 1))
        if data and (more := port.in_waiting):
            data += port.read(more)
        return data

    def _lost(self, port: serial.SerialBase, exc: BaseException) -> None:
        with self._lock:
            if self._port is port:
                self._port = None
        log.info("%s: connection lost (%s); reopening every %g s", self.url, exc, self.reconnect_interval)
        with contextlib.suppress(Exception):
            port.close()

    def _from_port(self) -> None:
        """Copy the meter's bytes to the local socket; reopen the port when it breaks."""
        while not self._stop.is_set():
            port = self._port
            if port is None:
                try:
                    port = self._open()
                except PortError:
                    self._stop.wait(self.reconnect_interval)
                    continue
                with self._lock:
                    self._port = port
                self.reconnects += 1
            try:
                data = self._read(port)
            except (OSError, serial.SerialException) as exc:
                self._lost(port, exc)
                continue
            if data:
                with contextlib.suppress(OSError):
                    self._inner.sendall(data)

    def _to_port(self) -> None:
        """Copy the driver side's bytes to the meter; drop them while the connection is down."""
        while not self._stop.is_set():
            try:
                data = self._inner.recv(CHUNK)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return  # the outer end was closed: close() is under way
            port = self._port
            if port is None:
                self.dropped += len(data)
                continue
            try:
                port.write(data)
            except (OSError, serial.SerialException) as exc:
                self.dropped += len(data)
                self._lost(port, exc)

    def close(self) -> None:
        """Stop both threads, close the port and the socket pair (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            self._outer.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
        for end in (self._outer, self._inner):
            with contextlib.suppress(OSError):
                end.close()
