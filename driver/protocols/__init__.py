"""The meter protocols: one module a meter model, chosen by name (`DriverConfig.model`, `--model`).

`identify(link)` asks each protocol's probe() in turn, for `model = "auto"`.
"""

from __future__ import annotations

from driver.errors import CommunicationError, ConfigurationError
from driver.protocol import MeterProtocol, RegisterLink
from driver.protocols.iskra import IskraProtocol
from driver.protocols.reference import ReferenceProtocol

PROTOCOLS: dict[str, type[MeterProtocol]] = {
    ReferenceProtocol.model: ReferenceProtocol,
    IskraProtocol.model: IskraProtocol,
}


def protocol_class(model: str) -> type[MeterProtocol]:
    """The protocol of a model name; ConfigurationError listing the known ones."""
    try:
        return PROTOCOLS[model]
    except KeyError:
        raise ConfigurationError(
            f"model: {model!r} is not a known meter model (known: {', '.join(PROTOCOLS)})"
        ) from None


def identify(link: RegisterLink) -> tuple[type[MeterProtocol], str]:
    """The protocol of the meter on `link` and its description; ConfigurationError naming what each
    protocol read when none knows the meter, CommunicationError when the meter does not answer."""
    seen: list[str] = []
    silent = 0
    for protocol in PROTOCOLS.values():
        try:
            matched, description = protocol.probe(link)
        except CommunicationError as exc:
            silent += 1
            seen.append(f"{protocol.model}: {exc}")
            continue
        if matched:
            return protocol, description
        seen.append(f"{protocol.model}: {description}")
    if silent == len(PROTOCOLS):
        raise CommunicationError("meter does not answer, so its model cannot be told: " + "; ".join(seen))
    raise ConfigurationError("model: no known meter model answers on this port (" + "; ".join(seen) + ")")


__all__ = ["PROTOCOLS", "IskraProtocol", "MeterProtocol", "ReferenceProtocol", "identify", "protocol_class"]
