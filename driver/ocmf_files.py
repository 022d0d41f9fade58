"""Read OCMF records, and the public keys that come with them, from the files users receive.

Formats (see docs/ocmf.md, "Input files"):

- ``xml``: the Transparenzsoftware's input file, ``<values><value transactionId=".." context="..">
  <signedData format="OCMF" encoding="plain">OCMF|...</signedData><publicKey encoding="hex">..</publicKey>
  </value>...</values>``;
- ``lines``: OCMF records one a line (blank lines and lines starting with ``#`` are skipped);
- ``ocpp``: OCPP JSON holding signed meter values: 1.6 sampledValue with format ``SignedData``, 2.0.1
  ``signedMeterValue {signedMeterData, encodingMethod, publicKey}``; a request payload, an OCPP-J call
  ``[2, id, action, payload]`` or a list of them; the signed data plain or base64.

`read_input` detects the format from the first character (``<`` XML, ``{``/``[`` JSON, ``OCMF|`` lines)
unless told, and raises OcmfFormatError naming the file and what is wrong when it cannot read it. A value
inside a readable file that holds no OCMF record becomes a `SignedValue` with `problem` set, so the other
values are still verified. XML is parsed by the standard library's expat with every DOCTYPE and ENTITY
declaration refused: no external entities, no entity expansion.
"""

from __future__ import annotations

import base64
import binascii
import json
import xml.parsers.expat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from driver.errors import OcmfFormatError

MAX_INPUT_BYTES = 16 * 1024 * 1024  # a transaction log of tens of thousands of records; stops a runaway input
FORMATS = ("xml", "lines", "ocpp")
FORMAT_NAMES = {"xml": "Transparenzsoftware XML", "lines": "OCMF records, one a line", "ocpp": "OCPP JSON"}
_OCMF_HEADER = "OCMF|"


@dataclass(frozen=True)
class SignedValue:
    """One signed value found in an input: the OCMF record text, the key that came with it, where it was."""

    source: str  # e.g. "log.xml: value 2 (Transaction.End, transactionId 15001)"
    record: str | None  # the OCMF record text; None when `problem` says why there is none
    public_key: str | bytes | None = None  # the key given beside it in the file, if any
    context: str | None = None  # Transaction.Begin / Transaction.End / Sample.Periodic ... when stated
    problem: str | None = None  # why this value holds no readable OCMF record


@dataclass(frozen=True)
class InputFile:
    """What `read_input` found: the format and every signed value, in file order."""

    name: str
    format: str  # one of FORMATS
    values: tuple[SignedValue, ...]

    @property
    def format_name(self) -> str:
        return FORMAT_NAMES[self.format]


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------


def read_input(data: str | bytes, name: str, input_format: str = "auto") -> InputFile:
    """Find the signed values in `data` (a file's content); `name` names it in messages."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_INPUT_BYTES:
        raise OcmfFormatError(f"{name}: {len(raw)} bytes, more than the {MAX_INPUT_BYTES} accepted")
    if input_format not in ("auto", *FORMATS):
        raise OcmfFormatError(
            f"{name}: format {input_format!r} unknown (expected auto, {', '.join(FORMATS)})"
        )
    chosen = detect_format(raw, name) if input_format == "auto" else input_format
    if chosen == "xml":
        values = list(_xml_values(raw, name))
    else:
        text = _text(raw, name)
        values = list(_line_values(text, name) if chosen == "lines" else _ocpp_values(text, name))
    if not values:
        raise OcmfFormatError(f"{name}: {FORMAT_NAMES[chosen]} holds no signed values ({_WHAT[chosen]})")
    return InputFile(name, chosen, tuple(values))


_WHAT = {
    "xml": "expected <value> elements with <signedData> under <values>",
    "lines": "expected lines starting with 'OCMF|'",
    "ocpp": "expected sampledValue entries with format SignedData (1.6) or signedMeterValue (2.0.1)",
}


def detect_format(raw: bytes, name: str) -> str:
    """xml, ocpp or lines from the first character that is not white space (a UTF-8 BOM is skipped, and so
    are comment lines starting with #, which only a line file may have)."""
    head = raw.removeprefix(b"\xef\xbb\xbf").lstrip()
    while head.startswith(b"#"):
        head = head.partition(b"\n")[2].lstrip()
    head = head[:16]
    if not head:
        raise OcmfFormatError(f"{name}: empty (no record, no XML, no JSON)")
    if head.startswith(b"<"):
        return "xml"
    if head[:1] in (b"{", b"["):
        return "ocpp"
    if head.startswith(_OCMF_HEADER.encode()):
        return "lines"
    shown = head.decode("utf-8", "replace")
    raise OcmfFormatError(
        f"{name}: not an input meter-ocmf reads (starts with {shown!r}; expected an OCMF record 'OCMF|...', "
        "Transparenzsoftware XML '<values>' or OCPP JSON)"
    )


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OcmfFormatError(f"{name}: not UTF-8 at byte {exc.start}") from None


def _ocmf_text(text: str) -> str | None:
    """The record when `text` is one, plain or as base64 of its UTF-8 bytes; else None."""
    stripped = text.strip()
    if stripped.startswith(_OCMF_HEADER):
        return stripped
    try:
        decoded = base64.b64decode("".join(stripped.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded.strip() if decoded.strip().startswith(_OCMF_HEADER) else None


# --------------------------------------------------------------------------------------------------
# One record a line
# --------------------------------------------------------------------------------------------------


def _line_values(text: str, name: str) -> Iterator[SignedValue]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        source = f"{name}: line {number}"
        if stripped.startswith(_OCMF_HEADER):
            yield SignedValue(source, stripped)
        else:
            yield SignedValue(source, None, problem=f"not an OCMF record (starts with {stripped[:12]!r})")


# --------------------------------------------------------------------------------------------------
# Transparenzsoftware XML
# --------------------------------------------------------------------------------------------------


class _Refused(Exception):
    """Internal: the XML declares a DOCTYPE or an entity."""


def parse_xml(raw: bytes, name: str) -> ElementTree.Element:
    """An ElementTree from expat, refusing DOCTYPE and ENTITY declarations (so no entity is ever expanded
    or fetched); prefixes are dropped from element names."""
    builder = ElementTree.TreeBuilder()
    parser = xml.parsers.expat.ParserCreate()

    def refuse(what: str) -> Any:
        def handler(*_: Any) -> None:
            raise _Refused(what)

        return handler

    parser.StartDoctypeDeclHandler = refuse("a DOCTYPE declaration")
    parser.EntityDeclHandler = refuse("an ENTITY declaration")
    parser.UnparsedEntityDeclHandler = refuse("an ENTITY declaration")
    parser.ExternalEntityRefHandler = refuse("an external entity")
    parser.StartElementHandler = lambda tag, attrs: builder.start(tag.rpartition(":")[2], attrs)
    parser.EndElementHandler = lambda tag: builder.end(tag.rpartition(":")[2])
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(raw, True)
    except _Refused as exc:
        raise OcmfFormatError(f"{name}: XML with {exc} is refused (no DTDs or entities are read)") from None
    except xml.parsers.expat.ExpatError as exc:
        reason = xml.parsers.expat.ErrorString(exc.code)
        raise OcmfFormatError(
            f"{name}: not well-formed XML: {reason} at line {exc.lineno}, column {exc.offset + 1}"
        ) from None
    return builder.close()


def _xml_values(raw: bytes, name: str) -> Iterator[SignedValue]:
    root = parse_xml(raw, name)
    if root.tag != "values":
        raise OcmfFormatError(
            f"{name}: XML root element is <{root.tag}>, expected <values> (the Transparenzsoftware's format)"
        )
    for position, value in enumerate(root.findall("value"), start=1):
        context, transaction = value.get("context"), value.get("transactionId")
        details = ", ".join(x for x in (context, transaction and f"transactionId {transaction}") if x)
        source = f"{name}: value {position}" + (f" ({details})" if details else "")
        signed, key = value.find("signedData"), value.find("publicKey")
        try:
            public_key = _xml_key(key) if key is not None else None
        except OcmfFormatError as exc:
            yield SignedValue(source, None, context=context, problem=str(exc))
            continue
        if signed is None:
            problem = "has no <signedData>" + (
                " (only <encodedData>)" if value.find("encodedData") is not None else ""
            )
            yield SignedValue(source, None, public_key, context, problem)
            continue
        record, problem = _xml_record(signed)
        yield SignedValue(source, record, public_key, context, problem)


def _xml_record(signed: ElementTree.Element) -> tuple[str | None, str | None]:
    data_format = (signed.get("format") or "").strip()
    if data_format and data_format.upper() != "OCMF":
        return None, f"signedData format {data_format!r} is not OCMF"
    encoding = (signed.get("encoding") or "plain").strip().lower()
    text = (signed.text or "").strip()
    if not text:
        return None, "<signedData> is empty"
    try:
        decoded = _decode_xml_text(text, encoding, "signedData").decode("utf-8")
    except OcmfFormatError as exc:
        return None, str(exc)
    except UnicodeDecodeError:
        return None, f"signedData ({encoding}) does not decode to UTF-8 text"
    decoded = decoded.strip()
    if not decoded.startswith(_OCMF_HEADER):
        return None, f"signedData ({encoding}) is not an OCMF record (starts with {decoded[:12]!r})"
    return decoded, None


def _xml_key(key: ElementTree.Element) -> str | bytes | None:
    text = (key.text or "").strip()
    if not text:
        return None
    encoding = (key.get("encoding") or "plain").strip().lower()
    if encoding in ("plain", "hex"):
        return text  # hex, base64 or PEM text: driver.ocmf.key_bytes reads all three
    return _decode_xml_text(text, encoding, "publicKey")


def _decode_xml_text(text: str, encoding: str, element: str) -> bytes:
    """The Transparenzsoftware's encodings: plain, hex, base64, base32."""
    compact = "".join(text.split())
    try:
        if encoding == "plain":
            return text.encode("utf-8")
        if encoding == "hex":
            return bytes.fromhex(compact)
        if encoding == "base64":
            return base64.b64decode(compact, validate=True)
        if encoding == "base32":
            return base64.b32decode(compact)
    except (ValueError, binascii.Error):
        raise OcmfFormatError(f"{element}: not valid {encoding} (its encoding attribute)") from None
    raise OcmfFormatError(f"{element}: encoding {encoding!r} unknown (expected plain, hex, base64 or base32)")


# --------------------------------------------------------------------------------------------------
# OCPP JSON
# --------------------------------------------------------------------------------------------------


def _ocpp_values(text: str, name: str) -> Iterator[SignedValue]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OcmfFormatError(
            f"{name}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise OcmfFormatError(f"{name}: JSON nested too deeply") from None
    yield from _walk(document, "", name)


def _walk(node: Any, path: str, name: str) -> Iterator[SignedValue]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]", name)
        return
    if not isinstance(node, dict):
        return
    if "signedMeterValue" in node:  # OCPP 2.0.1 SampledValueType
        yield _v201_value(node, f"{path}.signedMeterValue".lstrip("."), name)
    elif node.get("format") == "SignedData":  # OCPP 1.6 SampledValue
        yield _v16_value(node, path or "(top level)", name)
    for key, child in node.items():
        if key != "signedMeterValue" and isinstance(child, dict | list):
            yield from _walk(child, f"{path}.{key}".lstrip("."), name)


def _context_text(node: dict[str, Any]) -> str | None:
    context = node.get("context")
    return context if isinstance(context, str) else None


def _v16_value(node: dict[str, Any], path: str, name: str) -> SignedValue:
    context = _context_text(node)
    source = f"{name}: OCPP 1.6 {path}" + (f" ({context})" if context else "")
    value = node.get("value")
    if not isinstance(value, str) or not value.strip():
        return SignedValue(
            source, None, context=context, problem="SignedData value is not a non-empty string"
        )
    record = _ocmf_text(value)
    if record is None:
        return SignedValue(
            source, None, context=context, problem="SignedData value is not OCMF (plain or base64)"
        )
    return SignedValue(source, record, None, context)


def _v201_value(node: dict[str, Any], path: str, name: str) -> SignedValue:
    context = _context_text(node)
    source = f"{name}: OCPP 2.0.1 {path}" + (f" ({context})" if context else "")
    signed = node["signedMeterValue"]
    if not isinstance(signed, dict):
        return SignedValue(source, None, context=context, problem="signedMeterValue is not an object")
    method = signed.get("encodingMethod")
    if isinstance(method, str) and method.strip() and method.strip().upper() != "OCMF":
        return SignedValue(source, None, context=context, problem=f"encodingMethod {method!r} is not OCMF")
    data = signed.get("signedMeterData")
    if not isinstance(data, str) or not data.strip():
        return SignedValue(source, None, context=context, problem="signedMeterData is not a non-empty string")
    key = signed.get("publicKey")
    public_key = key.strip() if isinstance(key, str) and key.strip() else None
    record = _ocmf_text(data)
    if record is None:
        return SignedValue(
            source, None, public_key, context, "signedMeterData is not an OCMF record (plain or base64)"
        )
    return SignedValue(source, record, public_key, context)


__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "MAX_INPUT_BYTES",
    "InputFile",
    "SignedValue",
    "detect_format",
    "parse_xml",
    "read_input",
]
