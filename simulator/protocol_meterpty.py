"""pyserial's handler for meterpty://FD URLs (serial.protocol_handler_packages): see transceiver.py."""

from .transceiver import Serial

__all__ = ["Serial"]
