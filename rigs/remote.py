"""A serial port served on a loopback TCP port, the way ser2net serves a bench's RS-485 adapter.

The virtual rig uses this to put meter-sim behind the network (`[link] remote = "rfc2217"` or
`"socket"`), so the driver or the link proxy reaches it through a pyserial URL exactly as it reaches
a meter in another room: `rfc2217://127.0.0.1:PORT` (RFC 2217, Telnet with COM port control, built on
pyserial's `serial.rfc2217.PortManager`) or `socket://127.0.0.1:PORT` (raw bytes, like ser2net's
`raw` mode).

One thread serves one client at a time; a client that connects while another is connected replaces
it (a driver that reconnects after a failure must not be locked out by its own dead connection).
Nothing is buffered for a client that is not there: bytes from the port with no client are dropped, as
on a wire nobody listens to. Only loopback addresses are served.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import selectors
import socket
import threading
from typing import Any

import serial
from serial.rfc2217 import PortManager

from rigs.errors import RigError, RigPortError

log = logging.getLogger(__name__)

PROTOCOLS = ("rfc2217", "socket")
CHUNK = 4096
SEND_TIMEOUT = 2.0  # seconds a client may stall a send before it is dropped


def check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: the rig serves its meter to this machine only."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise RigError(f"remote port server: {host!r} is not a loopback address "
                       "(the rig serves its meter to this machine only)")


def is_pty(device: str) -> bool:
    """True for a pseudo-terminal slave: it has no line, so line settings and modem lines are not real."""
    return os.path.realpath(device).startswith("/dev/pts/")


class _Setting:
    """One line setting of _SerialLines (baudrate, parity, dtr, ...)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, lines: _SerialLines, owner: type | None = None) -> Any:
        return lines.get(self.name)

    def __set__(self, lines: _SerialLines, value: Any) -> None:
        lines.set(self.name, value)


class _SerialLines:
    """The serial port as RFC 2217's PortManager sees it: line settings, control and modem lines.

    On a real device the settings are applied to the port. A pty carries bytes, not bits (Linux even
    refuses parity on one), so there they are only recorded and reported back, and the modem lines
    read as a meter that is there (CTS, DSR, CD on)."""

    baudrate = _Setting()
    bytesize = _Setting()
    parity = _Setting()
    stopbits = _Setting()
    xonxoff = _Setting()
    rtscts = _Setting()
    break_condition = _Setting()
    dtr = _Setting()
    rts = _Setting()

    def __init__(self, port: serial.SerialBase, apply: bool) -> None:
        self._port = port
        self._apply = apply
        self._values: dict[str, Any] = {
            "baudrate": port.baudrate, "bytesize": port.bytesize, "parity": port.parity,
            "stopbits": port.stopbits, "xonxoff": False, "rtscts": False, "break_condition": False,
            "dtr": True, "rts": True,
        }

    def get(self, name: str) -> Any:
        return getattr(self._port, name) if self._apply else self._values[name]

    def set(self, name: str, value: Any) -> None:
        if self._apply:
            try:
                setattr(self._port, name, value)
            except (OSError, serial.SerialException) as exc:  # PortManager rolls back on ValueError only
                raise ValueError(f"{name} {value!r}: {exc}") from None
        self._values[name] = value

    def _modem(self, name: str, on_a_pty: bool) -> bool:
        if not self._apply:
            return on_a_pty
        try:
            return bool(getattr(self._port, name))
        except (OSError, serial.SerialException):
            return False

    @property
    def cts(self) -> bool:
        return self._modem("cts", True)

    @property
    def dsr(self) -> bool:
        return self._modem("dsr", True)

    @property
    def ri(self) -> bool:
        return self._modem("ri", False)

    @property
    def cd(self) -> bool:
        return self._modem("cd", True)

    def reset_input_buffer(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.reset_input_buffer()

    def reset_output_buffer(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.reset_output_buffer()


class _Connection:
    """The network side PortManager writes its Telnet answers to (and the server its data)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.broken = True  # the serving loop drops the client


class PortServer:
    """Serve the serial port `device` on `host:port` (port 0: any free one) to one client at a time.

    `protocol` is "rfc2217" or "socket" (raw). `url` is what a client opens with pyserial; `start()`
    binds and starts the thread, `close()` stops it and closes every socket and the port."""

    def __init__(self, device: str, protocol: str = "rfc2217", host: str = "127.0.0.1", port: int = 0,
                 baudrate: int = 19200) -> None:
        if protocol not in PROTOCOLS:
            raise RigError(f"remote port server: protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
        check_loopback(host)
        self.device = device
        self.protocol = protocol
        self.host = host
        try:
            self._port = serial.serial_for_url(device, baudrate=baudrate, timeout=0)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise RigPortError(f"remote port server: cannot open {device}: {exc}") from None
        self._lines = _SerialLines(self._port, apply=not is_pty(device))
        self._fd = self._port.fileno()
        os.set_blocking(self._fd, False)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(1)
        except OSError as exc:
            self._listener.close()
            self._port.close()
            raise RigError(f"remote port server: cannot listen on {host}:{port}: {exc.strerror}") from None
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        self._selector = selectors.DefaultSelector()
        self._client: _Connection | None = None
        self._manager: PortManager | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"PortServer({device})", daemon=True)
        self._started = False
        self._closed = False
        self._changed = threading.Condition()
        self.connections = 0
        self.to_port = 0
        self.to_client = 0
        self.dropped = 0

    @property
    def url(self) -> str:
        """The pyserial URL of this server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"

    @property
    def client_connected(self) -> bool:
        return self._client is not None

    def start(self) -> PortServer:
        """Start serving (idempotent)."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def wait_for(self, condition: Any, timeout: float) -> bool:
        """Wait until condition(self) holds, re-checked whenever a client comes or goes or bytes are
        dropped; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout)

    def close(self) -> None:
        """Stop the thread; close the client, the listening socket and the serial port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._drop_client()
        self._selector.close()
        for closable in (self._listener, self._port):
            with contextlib.suppress(Exception):
                closable.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PortServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        selector = self._selector
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        selector.register(self._listener, selectors.EVENT_READ, "accept")
        selector.register(self._fd, selectors.EVENT_READ, "port")
        try:
            while not self._stop.is_set():
                for key, _ in selector.select():
                    if self._stop.is_set():
                        break
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 64)
                    elif key.data == "client":
                        self._from_client(key.fileobj)  # type: ignore[arg-type]
                    elif key.data == "port":
                        self._from_port()
                    elif key.data == "accept":
                        self._accept()
        except Exception:  # a bug here must not hang the rig: the clients see the port go away
            log.exception("remote port server %s stopped", self.url)
        finally:
            self._drop_client()

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        self._drop_client()  # the newest client wins
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(SEND_TIMEOUT)
        client = _Connection(sock)
        self._selector.register(sock, selectors.EVENT_READ, "client")
        self._client = client
        if self.protocol == "rfc2217":
            self._manager = PortManager(self._lines, client)  # sends its Telnet option requests at once
        with self._changed:
            self.connections += 1
            self._changed.notify_all()

    def _drop_client(self) -> None:
        client, self._client, self._manager = self._client, None, None
        if client is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()
        with self._changed:
            self._changed.notify_all()

    def _from_client(self, sock: socket.socket) -> None:
        client = self._client
        if client is None or sock is not client.sock:
            return
        try:
            data = sock.recv(CHUNK)
        except OSError:
            data = b""
        if not data:
            self._drop_client()
            return
        if self._manager is not None:
            try:
                data = b"".join(self._manager.filter(data))  # Telnet commands answered, data unescaped
            except Exception as exc:  # PortManager trusts its client (e.g. KeyError on parity 7)
                log.info("remote port server %s: dropping a client that sent malformed Telnet: %r",
                         self.url, exc)
                self._drop_client()
                return
        if client.broken:
            self._drop_client()
            return
        self._write_port(data)

    def _write_port(self, data: bytes) -> None:
        while data:
            try:
                written = os.write(self._fd, data)
            except OSError:  # the port is full or gone: the rest is lost, as on a wire
                self.dropped += len(data)
                return
            self.to_port += written
            data = data[written:]

    def _from_port(self) -> None:
        try:
            data = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the far end of the port went away (meter-sim ended): stop polling it
            log.info("remote port server %s: %s went away", self.url, self.device)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._fd)
            return
        client = self._client
        if client is None:
            with self._changed:
                self.dropped += len(data)
                self._changed.notify_all()
            return
        raw = len(data)
        if self._manager is not None:
            data = b"".join(self._manager.escape(data))  # IAC doubled
        client.write(data)
        if client.broken:
            self._drop_client()
        else:
            self.to_client += raw
