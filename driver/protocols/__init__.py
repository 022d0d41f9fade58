"""The meter protocols: one module a meter model, chosen by name (`DriverConfig.model`, `--model`).

`identify(link)` asks each protocol's probe() in turn, for `model = "auto"`.
"""

from __future__ import annotations

from driver.errors import CommunicationError, ConfigurationError
from driver.protocol import MeterProtocol, RegisterLink
from driver.protocols.em580 import Em580Protocol
from driver.protocols.iskra import IskraProtocol
from driver.protocols.reference import ReferenceProtocol, ReferenceSRProtocol
from driver.protocols.sdm630 import Sdm630Protocol

PROTOCOLS: dict[str, type[MeterProtocol]] = {
    ReferenceProtocol.model: ReferenceProtocol,
    ReferenceSRProtocol.model: ReferenceSRProtocol,
    IskraProtocol.model: IskraProtocol,
    Em580Protocol.model: Em580Protocol,
    Sdm630Protocol.model: Sdm630Protocol,
}
"""Every model; identify() probes them in this order (reference-sr answers as the reference does, so
"auto" names it "reference": the two differ in behaviour, not in identity)."""


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
    probed = [protocol for protocol in PROTOCOLS.values() if protocol is not ReferenceSRProtocol]
    for protocol in probed:
        try:
            matched, description = protocol.probe(link)
        except CommunicationError as exc:
            silent += 1
            seen.append(f"{protocol.model}: {exc}")
            continue
        if matched:
            return protocol, description
        seen.append(f"{protocol.model}: {description}")
    if silent == len(probed):
        raise CommunicationError("meter does not answer, so its model cannot be told: " + "; ".join(seen))
    raise ConfigurationError("model: no known meter model answers on this port (" + "; ".join(seen) + ")")


__all__ = ["PROTOCOLS", "Em580Protocol", "IskraProtocol", "MeterProtocol", "ReferenceProtocol",
           "ReferenceSRProtocol", "Sdm630Protocol", "identify", "protocol_class"]
