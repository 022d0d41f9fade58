"""OCMF records: parse them as real meters write them and verify them like the German transparency software.

A record is ``OCMF|<payload JSON>|<signature JSON>``. The signature covers the payload section's bytes
exactly as received, so nothing here ever re-serialises JSON. `parse` turns a record into an `OcmfRecord`
(raising `OcmfFormatError`, naming where, when it is malformed); `verify` checks the ECDSA signature with
the meter's public key and runs the reading and transaction checks, naming each one that fails.
See docs/ocmf.md for the checks and the decisions behind them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import ecdsa
import ecdsa.util
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from ecdsa.ellipticcurve import CurveFp, PointJacobi

from driver.errors import OcmfFormatError

MAX_RECORD_CHARS = 65536  # far above any real record; stops a runaway input before JSON parsing

# --------------------------------------------------------------------------------------------------
# Curves and hashes (OCMF spec table 22: "Predefined Signature Algorithms")
# --------------------------------------------------------------------------------------------------

# secp192k1 (SEC 2 v2, section 2.2.1) is in neither OpenSSL nor the ecdsa package's list: defined here.
_P192K1 = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFEE37
_N192K1 = 0xFFFFFFFFFFFFFFFFFFFFFFFE26F2FC170F69466A74DEFD8D
_CURVE_FP_192K1 = CurveFp(_P192K1, 0, 3, 1)
SECP192K1_ECDSA = ecdsa.curves.Curve(
    "SECP192k1",
    _CURVE_FP_192K1,
    PointJacobi(
        _CURVE_FP_192K1,
        0xDB4FF10EC057E9AE26B07D0280B7F4341DA5D1B1EAE06C7D,
        0x9B2F2F6D9C5628A7844163D015BE86344082AA88D95E2F9D,
        1,
        _N192K1,
        generator=True,
    ),
    (1, 3, 132, 0, 31),
)


@dataclass(frozen=True)
class Curve:
    """An elliptic curve OCMF names, with the implementations that can verify on it."""

    name: str  # canonical spelling used in messages
    size: int  # bytes in one coordinate (and in r or s)
    oid: str  # named-curve OID in a SubjectPublicKeyInfo
    ecdsa_curve: ecdsa.curves.Curve
    openssl_curve: (
        type[ec.EllipticCurve] | None
    )  # None: OpenSSL (cryptography) lacks it, the ecdsa package verifies

    @property
    def order(self) -> int:
        return int(self.ecdsa_curve.order)


CURVES: dict[str, Curve] = {
    c.name: c
    for c in (
        Curve("secp192k1", 24, "1.3.132.0.31", SECP192K1_ECDSA, None),
        Curve("secp256k1", 32, "1.3.132.0.10", ecdsa.SECP256k1, ec.SECP256K1),
        Curve("secp192r1", 24, "1.2.840.10045.3.1.1", ecdsa.NIST192p, ec.SECP192R1),
        Curve("secp256r1", 32, "1.2.840.10045.3.1.7", ecdsa.NIST256p, ec.SECP256R1),
        Curve("brainpoolP256r1", 32, "1.3.36.3.3.2.8.1.1.7", ecdsa.BRAINPOOLP256r1, ec.BrainpoolP256R1),
        Curve("secp384r1", 48, "1.3.132.0.34", ecdsa.NIST384p, ec.SECP384R1),
        Curve("brainpoolP384r1", 48, "1.3.36.3.3.2.8.1.1.11", ecdsa.BRAINPOOLP384r1, ec.BrainpoolP384R1),
    )
}
_CURVE_ALIASES = {
    "secp192k1": "secp192k1",
    "secp256k1": "secp256k1",
    "secp192r1": "secp192r1",
    "prime192v1": "secp192r1",
    "p192": "secp192r1",
    "secp256r1": "secp256r1",
    "prime256v1": "secp256r1",
    "p256": "secp256r1",
    "brainpool256r1": "brainpoolP256r1",
    "brainpoolp256r1": "brainpoolP256r1",
    "secp384r1": "secp384r1",
    "prime384v1": "secp384r1",
    "p384": "secp384r1",
    "brainpool384r1": "brainpoolP384r1",
    "brainpoolp384r1": "brainpoolP384r1",
}
_CURVES_BY_OID = {c.oid: c for c in CURVES.values()}

_HASHES: dict[str, tuple[Callable[[], hashes.HashAlgorithm], Callable[..., Any]]] = {
    "SHA256": (hashes.SHA256, hashlib.sha256),
    "SHA384": (hashes.SHA384, hashlib.sha384),
    "SHA512": (hashes.SHA512, hashlib.sha512),
}

DEFAULT_SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"  # OCMF: used when SA is absent


@dataclass(frozen=True)
class SignatureAlgorithm:
    """A parsed SA value such as ``ECDSA-brainpoolP256r1-SHA256``."""

    text: str
    curve: Curve
    hash_name: str  # SHA256, SHA384 or SHA512


def parse_signature_algorithm(text: str) -> SignatureAlgorithm:
    """Read an SA value; the curve may be spelled as in the OCMF table or as in RFC 5639 (brainpoolP256r1)."""
    parts = text.strip().split("-")
    if len(parts) < 3 or parts[0].upper() != "ECDSA":
        raise OcmfFormatError(f"signature section: SA {text!r} is not of the form ECDSA-<curve>-<hash>")
    curve_key = "-".join(parts[1:-1]).replace("-", "").replace("_", "").lower()
    curve_name = _CURVE_ALIASES.get(curve_key)
    if curve_name is None:
        known = ", ".join(CURVES)
        raise OcmfFormatError(f"signature section: SA {text!r} names an unknown curve (known: {known})")
    hash_name = parts[-1].upper().replace("-", "")
    if hash_name not in _HASHES:
        raise OcmfFormatError(
            f"signature section: SA {text!r} names an unknown hash (known: {', '.join(_HASHES)})"
        )
    return SignatureAlgorithm(text, CURVES[curve_name], hash_name)


# --------------------------------------------------------------------------------------------------
# Record model
# --------------------------------------------------------------------------------------------------

TIME_STATUS = {"U": "unsynchronised", "I": "informative", "S": "synchronised", "R": "relative"}
METER_STATUS = {
    "N": "NOT_PRESENT",
    "G": "OK",
    "T": "TIMEOUT",
    "D": "DISCONNECTED",
    "R": "NOT_FOUND",
    "M": "MANIPULATED",
    "X": "EXCHANGED",
    "I": "INCOMPATIBLE",
    "O": "OUT_OF_RANGE",
    "S": "SUBSTITUTE",
    "E": "OTHER_ERROR",
    "F": "READ_ERROR",
}
BEGIN_TX = "B"
SIGNATURE_CHECK = "signature"  # the check id of the signature; every other check is about billing
END_TX = frozenset("ELRAP")  # E end; L local, R remote, A abort, P power failure: more precise ends
ERROR_IDENTIFICATION_LEVELS = {
    "MISMATCH": "UIDs do not match",
    "INVALID": "certificate not correct",
    "OUTDATED": "referenced trust certificate expired",
    "UNKNOWN": "certificate could not be verified",
}
_ENERGY_UNITS_IN_WH = {"Wh": Decimal(1), "kWh": Decimal(1000), "varh": Decimal(1), "kvarh": Decimal(1000)}
_INHERITED_FIELDS = (
    "TM",
    "TX",
    "RI",
    "RU",
    "RT",
    "EF",
    "ST",
)  # OCMF: omitted when equal to the previous reading
_TM_PATTERN = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?:[,.](?P<frac>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})(?: (?P<flag>[A-Z]))?"
)


@dataclass(frozen=True)
class Reading:
    """One entry of RD, with the fields it inherits from the reading before it already filled in."""

    index: int  # 1-based position in RD
    time: datetime | None
    time_status: str | None  # U, I, S or R
    time_text: str | None
    tx: str | None  # transaction reason: B, C, X, E, L, R, A, P, S, T; None outside a transaction
    value: Decimal | None  # None for an event-only reading
    value_text: str | None  # RV as written in the record
    ri: str | None  # OBIS code
    ru: str | None  # unit
    rt: str | None  # AC or DC
    ef: str  # error flags, "" when none
    st: str | None  # meter status, G when good
    raw: dict[str, Any]

    def value_in_base_unit(self) -> Decimal | None:
        """The value in Wh (or varh) so readings in kWh and Wh compare; None for other units."""
        if self.value is None or self.ru not in _ENERGY_UNITS_IN_WH:
            return None
        return self.value * _ENERGY_UNITS_IN_WH[self.ru]


@dataclass(frozen=True)
class OcmfRecord:
    """A parsed OCMF record. `payload_bytes` are the signed bytes exactly as received."""

    text: str
    payload_text: str
    payload_bytes: bytes
    payload: dict[str, Any]
    signature_section: dict[str, Any]
    algorithm: SignatureAlgorithm
    signature_encoding: str  # hex or base64
    signature_bytes: bytes
    signature_rs: tuple[int, int]
    signature_format: str  # "DER" or "raw r||s"
    readings: tuple[Reading, ...]

    @property
    def identification_level(self) -> str | None:
        level = self.payload.get("IL")
        return str(level) if level is not None else None

    @property
    def pagination(self) -> str | None:
        value = self.payload.get("PG")
        return str(value) if value is not None else None

    @property
    def meter_serial(self) -> str | None:
        value = self.payload.get("MS", self.payload.get("GS"))
        return str(value) if value is not None else None

    def is_transaction(self) -> bool:
        """True when the record holds a begin (TX B) and an end reading (TX E, L, R, A or P).

        This is the transparency software's "complete transaction". Any other record (a begin record, an
        end record, readings during charging, a fiscal reading) gets signature and reading checks only.
        """
        return any(r.tx == BEGIN_TX for r in self.readings) and any(r.tx in END_TX for r in self.readings)


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify`. Each failure starts with the id of its check, e.g. ``status: ...``."""

    valid: bool
    signature_valid: bool
    failures: list[str]
    record: OcmfRecord
    transaction_checked: bool  # whether the transaction checks ran (see OcmfRecord.is_transaction)
    begin_record: OcmfRecord | None = None  # set by verify_pair: the separately signed begin record
    notes: tuple[str, ...] = ()  # information that is no failure: time status not synchronised, TX A

    @property
    def failed_checks(self) -> set[str]:
        return {failure.split(":", 1)[0] for failure in self.failures}

    @property
    def authentic(self) -> bool:
        """Verdict 1: the record is exactly what the meter signed (the signature holds over the payload
        bytes as received). Says nothing about whether the values can be billed."""
        return self.signature_valid

    @property
    def billable(self) -> bool:
        """Verdict 2: the values are usable for billing: authentic, and every reading, identification and
        transaction check passed. The same as `valid`."""
        return self.valid

    @property
    def billing_failures(self) -> list[str]:
        """The failures that are not about the signature: why authentic values are not usable."""
        return [f for f in self.failures if not f.startswith(f"{SIGNATURE_CHECK}:")]


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def parse(record: str | bytes) -> OcmfRecord:
    """Split and decode an OCMF record; raise OcmfFormatError naming the section and field at fault."""
    text = _record_text(record)
    sections = text.split("|")
    if len(sections) != 3:
        raise OcmfFormatError(
            "record: expected 'OCMF|<payload>|<signature>' (3 sections separated by '|'), "
            f"found {len(sections)}"
            " section(s); OCMF does not allow '|' inside a section"
        )
    header, payload_text, signature_text = sections
    if header != "OCMF":
        raise OcmfFormatError(f"header: expected 'OCMF', found {header[:20]!r}")
    payload = _json_object(payload_text, "payload")
    signature_section = _json_object(signature_text, "signature section")
    algorithm = parse_signature_algorithm(
        _optional_str(signature_section, "SA", "signature section") or DEFAULT_SIGNATURE_ALGORITHM
    )
    encoding = (_optional_str(signature_section, "SE", "signature section") or "hex").lower()
    sd = _optional_str(signature_section, "SD", "signature section")
    if sd is None:
        raise OcmfFormatError("signature section: SD (signature data) is missing")
    signature_bytes = _decode_binary(sd, encoding, "signature section: SD")
    rs, signature_format = _signature_numbers(signature_bytes, algorithm.curve)
    return OcmfRecord(
        text=text,
        payload_text=payload_text,
        payload_bytes=payload_text.encode("utf-8"),
        payload=payload,
        signature_section=signature_section,
        algorithm=algorithm,
        signature_encoding=encoding,
        signature_bytes=signature_bytes,
        signature_rs=rs,
        signature_format=signature_format,
        readings=_readings(payload),
    )


def _record_text(record: str | bytes) -> str:
    if isinstance(record, bytes | bytearray):
        try:
            record = bytes(record).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OcmfFormatError(f"record: not UTF-8 at byte {exc.start}") from None
    if not isinstance(record, str):
        raise OcmfFormatError(f"record: expected a string, got {type(record).__name__}")
    if len(record) > MAX_RECORD_CHARS:
        raise OcmfFormatError(f"record: {len(record)} characters, more than the {MAX_RECORD_CHARS} accepted")
    text = (
        record.strip()
    )  # whitespace around the record is transport, not data; inside the payload it is kept
    if not text:
        raise OcmfFormatError("record: empty")
    return text


def _json_object(text: str, where: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise OcmfFormatError(f"{where}: duplicate key {key!r}")
            result[key] = value
        return result

    def no_constant(name: str) -> Any:
        raise OcmfFormatError(f"{where}: {name} is not valid JSON")

    try:
        value = json.loads(
            text, parse_float=Decimal, object_pairs_hook=no_duplicates, parse_constant=no_constant
        )
    except json.JSONDecodeError as exc:
        raise OcmfFormatError(f"{where}: invalid JSON at char {exc.pos}: {exc.msg}") from None
    except RecursionError:
        raise OcmfFormatError(f"{where}: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise OcmfFormatError(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OcmfFormatError(f"{where}: {key} must be a string, found {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _decode_binary(text: str, encoding: str, where: str) -> bytes:
    compact = "".join(text.split())
    if not compact:
        raise OcmfFormatError(f"{where}: empty")
    if encoding == "hex":
        try:
            return bytes.fromhex(compact)
        except ValueError:
            raise OcmfFormatError(f"{where}: not valid hex (SE is hex)") from None
    if encoding == "base64":
        try:
            return base64.b64decode(compact, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise OcmfFormatError(f"{where}: not valid base64 (SE is base64)") from None
    raise OcmfFormatError(f"signature section: SE {encoding!r} unknown (expected hex or base64)")


def _readings(payload: dict[str, Any]) -> tuple[Reading, ...]:
    rd = payload.get("RD")
    if rd is None:
        raise OcmfFormatError("payload: RD (readings) is missing")
    if not isinstance(rd, list) or not rd:
        raise OcmfFormatError("payload: RD must be a non-empty array of readings")
    readings: list[Reading] = []
    inherited: dict[str, Any] = {}
    for position, raw in enumerate(rd, start=1):
        where = f"payload: RD[{position - 1}]"
        if not isinstance(raw, dict):
            raise OcmfFormatError(f"{where}: expected an object, found {_json_type(raw)}")
        fields = {**inherited, **{k: v for k, v in raw.items() if k in _INHERITED_FIELDS}}
        inherited = fields
        for key in _INHERITED_FIELDS:
            if key in fields and not isinstance(fields[key], str):
                raise OcmfFormatError(f"{where}: {key} must be a string, found {_json_type(fields[key])}")
        time, status = _parse_time(fields.get("TM"), where)
        value, value_text = _parse_value(raw.get("RV"), where)
        readings.append(
            Reading(
                index=position,
                time=time,
                time_status=status,
                time_text=fields.get("TM"),
                tx=fields.get("TX"),
                value=value,
                value_text=value_text,
                ri=fields.get("RI"),
                ru=fields.get("RU"),
                rt=fields.get("RT"),
                ef=fields.get("EF", ""),
                st=fields.get("ST"),
                raw=raw,
            )
        )
    return tuple(readings)


def _parse_time(text: str | None, where: str) -> tuple[datetime | None, str | None]:
    if text is None:
        return None, None
    match = _TM_PATTERN.fullmatch(text.strip())
    if match is None:
        raise OcmfFormatError(f"{where}: TM {text!r} is not <date>T<time>,<ms><zone> <flag>")
    flag = match["flag"]
    if flag is not None and flag not in TIME_STATUS:
        raise OcmfFormatError(
            f"{where}: TM time status {flag!r} unknown (expected one of {', '.join(TIME_STATUS)})"
        )
    zone = match["zone"]
    frac = (match["frac"] or "0")[:6].ljust(6, "0")
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}")
        if zone == "Z":
            offset = timedelta(0)
        else:
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            if zone[0] == "-":
                offset = -offset
        return moment.replace(tzinfo=timezone(offset)), flag
    except ValueError as exc:
        raise OcmfFormatError(f"{where}: TM {text!r} is not a valid time ({exc})") from None


def _parse_value(raw: Any, where: str) -> tuple[Decimal | None, str | None]:
    """RV is a JSON number; some meters write a numeric string (e.g. "1.304"): both are read exactly."""
    if raw is None:
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        raise OcmfFormatError(f"{where}: RV must be a number, found {_json_type(raw)}")
    text = str(raw)
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise OcmfFormatError(f"{where}: RV {text!r} is not a number") from None
    if not value.is_finite():
        raise OcmfFormatError(f"{where}: RV {text!r} is not a finite number")
    return value, text


# --------------------------------------------------------------------------------------------------
# DER (signatures and SubjectPublicKeyInfo): a small lenient reader
# --------------------------------------------------------------------------------------------------


class _DerError(Exception):
    """Internal: bytes are not the DER structure expected."""


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """Read one TLV at pos; return (tag, content, next position). Long-form lengths are accepted."""
    if pos + 2 > len(data):
        raise _DerError("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise _DerError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise _DerError("truncated")
    return tag, data[pos : pos + length], pos + length


def _der_signature(data: bytes) -> tuple[int, int]:
    """SEQUENCE { INTEGER r, INTEGER s }, tolerating non-minimal integers (extra leading zero bytes)."""
    tag, body, end = _der_read(data, 0)
    if tag != 0x30 or end != len(data):
        raise _DerError("not one SEQUENCE")
    numbers = []
    pos = 0
    while pos < len(body):
        tag, content, pos = _der_read(body, pos)
        if tag != 0x02 or not content:
            raise _DerError("not an INTEGER")
        numbers.append(int.from_bytes(content, "big"))  # read unsigned: some meters omit the 0x00 sign pad
    if len(numbers) != 2:
        raise _DerError("not two INTEGERs")
    return numbers[0], numbers[1]


def _signature_numbers(signature: bytes, curve: Curve) -> tuple[tuple[int, int], str]:
    try:
        return _der_signature(signature), "DER"
    except _DerError:
        pass
    if len(signature) == 2 * curve.size:
        half = curve.size
        return (int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")), "raw r||s"
    raise OcmfFormatError(
        f"signature section: SD ({len(signature)} bytes) is neither a DER ECDSA signature nor raw r||s "
        f"({2 * curve.size} bytes for {curve.name})"
    )


def _oid_text(content: bytes) -> str:
    if not content:
        raise _DerError("empty OID")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if content[-1] & 0x80:
        raise _DerError("OID ends inside an arc")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


_EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"


# --------------------------------------------------------------------------------------------------
# Public keys
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """An EC public key: the point's encoded bytes and, when the key said so (DER), its curve."""

    point: bytes  # SEC 1 encoding: 04||X||Y, 02/03||X, or raw X||Y
    curve: Curve | None  # None for raw points: the record's SA decides


_HEX_TEXT = re.compile(r"(?:0x)?[0-9a-fA-F\s:]+")


def key_bytes(public_key: str | bytes) -> bytes:
    """The binary key from text (hex, spaces or colons allowed; base64; PEM) or from bytes as they are.

    A text of only hex digits is read as hex: a base64 key of only hex digits is vanishingly unlikely.
    """
    if isinstance(public_key, bytes | bytearray):
        if not public_key:
            raise OcmfFormatError("public key: empty")
        return bytes(public_key)
    if not isinstance(public_key, str):
        raise OcmfFormatError(f"public key: expected text or bytes, got {type(public_key).__name__}")
    text = public_key.strip()
    if not text:
        raise OcmfFormatError("public key: empty")
    if text.startswith("-----BEGIN"):
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("-----")]
        text = "".join(lines)
    elif _HEX_TEXT.fullmatch(text):
        digits = re.sub(r"[\s:]", "", text.removeprefix("0x"))
        if len(digits) % 2:
            raise OcmfFormatError(f"public key: odd number of hex digits ({len(digits)})")
        return bytes.fromhex(digits)
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise OcmfFormatError("public key: neither hex nor base64 (nor PEM)") from None


def load_public_key(public_key: str | bytes) -> PublicKey:
    """Read a key as DER SubjectPublicKeyInfo, 04||X||Y, compressed 02/03||X, or raw X||Y."""
    data = key_bytes(public_key)
    if data[0] == 0x30:
        return _spki_key(data)
    return PublicKey(point=data, curve=None)


def _spki_key(data: bytes) -> PublicKey:
    try:
        tag, spki, end = _der_read(data, 0)
        if tag != 0x30 or end != len(data):
            raise _DerError("not one SEQUENCE")
        tag, algorithm, pos = _der_read(spki, 0)
        if tag != 0x30:
            raise _DerError("no AlgorithmIdentifier")
        tag, bits, _ = _der_read(spki, pos)
        if tag != 0x03 or not bits or bits[0] != 0:
            raise _DerError("no BIT STRING key")
        tag, alg_oid, apos = _der_read(algorithm, 0)
        if tag != 0x06:
            raise _DerError("no algorithm OID")
        if _oid_text(alg_oid) != _EC_PUBLIC_KEY_OID:
            raise OcmfFormatError(f"public key: algorithm {_oid_text(alg_oid)} is not an EC public key")
        if apos >= len(algorithm):
            raise _DerError("no curve parameter")
        tag, curve_oid, _ = _der_read(algorithm, apos)
        if tag != 0x06:
            raise OcmfFormatError(
                "public key: explicit curve parameters are not supported, only named curves"
            )
        curve_name = _oid_text(curve_oid)
    except _DerError as exc:
        raise OcmfFormatError(f"public key: not a DER SubjectPublicKeyInfo ({exc})") from None
    curve = _CURVES_BY_OID.get(curve_name)
    if curve is None:
        raise OcmfFormatError(f"public key: curve OID {curve_name} is not one OCMF uses")
    return PublicKey(point=bits[1:], curve=curve)


def _point_xy(point: bytes, curve: Curve) -> tuple[int, int]:
    """Decode the point on `curve` and check that it lies on it."""
    n = curve.size
    if len(point) == 2 * n:
        point = b"\x04" + point
    if not (len(point) == 2 * n + 1 and point[0] == 4) and not (len(point) == n + 1 and point[0] in (2, 3)):
        raise OcmfFormatError(
            f"public key: {len(point)} bytes is not a {curve.name} point "
            f"(expected {2 * n} raw X||Y, {2 * n + 1} as 04||X||Y, or {n + 1} compressed)"
        )
    try:
        vk = ecdsa.VerifyingKey.from_string(point, curve=curve.ecdsa_curve)
    except (ecdsa.errors.MalformedPointError, ValueError, AssertionError):
        raise OcmfFormatError(f"public key: the point is not on {curve.name}") from None
    pub = vk.pubkey.point
    return int(pub.x()), int(pub.y())


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------


def verify_signature(record: OcmfRecord, public_key: str | bytes) -> list[str]:
    """Check the ECDSA signature over the payload bytes as received; return the failures (empty: valid)."""
    key = load_public_key(public_key)
    curve = record.algorithm.curve
    if key.curve is not None and key.curve is not curve:
        return [
            f"signature: the public key is on {key.curve.name} but SA {record.algorithm.text!r} "
            f"names {curve.name}"
        ]
    x, y = _point_xy(key.point, curve)
    r, s = record.signature_rs
    if not (0 < r < curve.order and 0 < s < curve.order):
        return ["signature: r or s is outside 1..n-1 for the curve"]
    crypto_hash, hashlib_hash = _HASHES[record.algorithm.hash_name]
    if curve.openssl_curve is not None:
        pub = ec.EllipticCurvePublicNumbers(x, y, curve.openssl_curve()).public_key()
        try:
            pub.verify(encode_dss_signature(r, s), record.payload_bytes, ec.ECDSA(crypto_hash()))
            ok = True
        except InvalidSignature:
            ok = False
    else:
        vk = ecdsa.VerifyingKey.from_string(
            b"\x04" + x.to_bytes(curve.size, "big") + y.to_bytes(curve.size, "big"), curve=curve.ecdsa_curve
        )
        digest = hashlib_hash(record.payload_bytes).digest()
        try:
            ok = vk.verify_digest(ecdsa.util.sigencode_string(r, s, curve.order), digest, allow_truncate=True)
        except ecdsa.BadSignatureError:
            ok = False
    if ok:
        return []
    return [
        f"signature: does not verify over the payload bytes with this public key ({record.algorithm.text})"
    ]


def reading_failures(record: OcmfRecord) -> list[str]:
    """Checks every reading gets: meter status G, no error flag, no exception reading (TX X)."""
    failures = []
    for r in record.readings:
        if r.st is None:
            failures.append(f"status: reading {r.index} has no meter status (ST)")
        elif r.st != "G":
            failures.append(
                f"status: reading {r.index} meter status {r.st!r} "
                f"({METER_STATUS.get(r.st, 'unknown')}), not G"
            )
        if r.ef:
            meaning = ", ".join({"E": "energy", "t": "time"}.get(c, repr(c)) for c in r.ef)
            failures.append(f"error-flag: reading {r.index} error flags {r.ef!r} ({meaning} not usable)")
        if r.tx == "X":
            failures.append(f"exception: reading {r.index} is an exception (TX X): values no longer usable")
    return failures


def identification_failures(record: OcmfRecord) -> list[str]:
    level = record.identification_level
    if level is not None and level.strip() in ERROR_IDENTIFICATION_LEVELS:
        return [
            f"identification: level {level.strip()} is an error state "
            f"({ERROR_IDENTIFICATION_LEVELS[level.strip()]})"
        ]
    return []


def transaction_failures(record: OcmfRecord | tuple[Reading, ...]) -> list[str]:
    """A begin and an end reading, end value not below begin value, begin not after end.

    Readings pair up by quantity (RI). A quantity read only at the end (KEBA adds 1-b:1.9.0 after its end
    reading) is information, not a pair; but at least one quantity must have both, and none more than one.
    """
    readings = record.readings if isinstance(record, OcmfRecord) else record
    begins = [r for r in readings if r.tx == BEGIN_TX]
    ends = [r for r in readings if r.tx in END_TX]
    failures = []
    if not begins:
        failures.append("begin-reading: the transaction has no begin reading (TX B)")
    if not ends:
        failures.append("end-reading: the transaction has no end reading (TX E, L, R, A or P)")
    if failures:
        return failures
    pairs = 0
    for quantity in dict.fromkeys(r.ri for r in begins + ends):
        b = [r for r in begins if r.ri == quantity]
        e = [r for r in ends if r.ri == quantity]
        label = quantity or "(no RI)"
        if len(b) > 1:
            failures.append(f"begin-reading: {label} has {len(b)} begin readings, expected one")
        elif len(e) > 1:
            failures.append(f"end-reading: {label} has {len(e)} end readings, expected one")
        elif b and e:
            pairs += 1
            failures += _compare_pair(b[0], e[0], label)
    if pairs == 0 and not failures:
        failures.append("end-reading: no quantity (RI) has both a begin and an end reading")
    return failures


def _compare_pair(begin: Reading, end: Reading, label: str) -> list[str]:
    failures = []
    if begin.value is None or end.value is None:
        failures.append(f"end-value: {label} begin or end reading has no value (RV)")
    else:
        b, e = begin.value_in_base_unit(), end.value_in_base_unit()
        if b is None or e is None:
            b, e = (begin.value, end.value) if begin.ru == end.ru else (None, None)
        if b is None or e is None:
            failures.append(
                f"end-value: {label} begin unit {begin.ru!r} and end unit {end.ru!r} do not compare"
            )
        elif e < b:
            failures.append(
                f"end-value: {label} end value {end.value_text} {end.ru} is below "
                f"begin value {begin.value_text} {begin.ru}"
            )
    if begin.time is None or end.time is None:
        failures.append(f"begin-before-end: {label} begin or end reading has no time (TM)")
    elif end.time < begin.time:
        failures.append(f"begin-before-end: {label} begins {begin.time_text} after it ends {end.time_text}")
    if begin.time_status == "R" and end.time_status != "R":
        failures.append(
            f"time-status: {label} begin time is relative (R) but end time status is {end.time_status!r}"
        )
    return failures


def record_notes(record: OcmfRecord) -> list[str]:
    """What a reader of the values should know but that fails no check.

    A time status other than S means the times are not a synchronised legal time (the energy values are
    not affected); TX A ends a transaction by an error, whose values hold as signed when ST is G.
    """
    notes = []
    statuses = dict.fromkeys(r.time_status for r in record.readings if r.time_status not in (None, "S"))
    for status in statuses:
        indexes = [str(r.index) for r in record.readings if r.time_status == status]
        which = f"reading {indexes[0]}" if len(indexes) == 1 else f"readings {', '.join(indexes)}"
        notes.append(
            f"time: {which} time status {status} ({TIME_STATUS[str(status)]}): "
            "the time is not a synchronised legal time"
        )
    for r in record.readings:
        if r.tx == "A" and (r.index == 1 or record.readings[r.index - 2].tx != "A"):
            notes.append(
                f"abort: reading {r.index} ends the transaction by an error (TX A); "
                "its values hold as signed (see status and error-flag)"
            )
    return notes


def verify(
    record: str | bytes | OcmfRecord, public_key: str | bytes, *, transaction: bool | None = None
) -> Verification:
    """Verify a record: signature, reading checks, identification and, for a transaction, transaction checks.

    `transaction=None` decides from the record (OcmfRecord.is_transaction); True forces the transaction
    checks (e.g. for a stop_transaction record that must hold begin and end); False skips them.
    Raises OcmfFormatError when the record or the key is malformed.
    """
    parsed = record if isinstance(record, OcmfRecord) else parse(record)
    signature = verify_signature(parsed, public_key)
    check_transaction = parsed.is_transaction() if transaction is None else transaction
    failures = [*signature, *reading_failures(parsed), *identification_failures(parsed)]
    if check_transaction:
        failures += transaction_failures(parsed)
    return Verification(
        valid=not failures,
        signature_valid=not signature,
        failures=failures,
        record=parsed,
        transaction_checked=check_transaction,
        notes=tuple(record_notes(parsed)),
    )


def pagination_number(record: OcmfRecord) -> int | None:
    """The number of a transaction-context PG (``T42`` -> 42); None for a fiscal (F) or absent PG."""
    match = re.fullmatch(r"T(\d+)", (record.pagination or "").strip())
    return int(match[1]) if match else None


def pair_failures(begin: OcmfRecord, end: OcmfRecord) -> list[str]:
    """What ties a separately signed begin record to its end record: the transparency software's checks
    (begin holds no end reading and vice versa) plus the OCMF rules on source and pagination."""
    failures = []
    if any(r.tx in END_TX for r in begin.readings):
        failures.append("begin-reading: the begin record holds an end reading")
    if not any(r.tx == BEGIN_TX for r in begin.readings):
        failures.append("begin-reading: the begin record holds no begin reading (TX B)")
    if any(r.tx == BEGIN_TX for r in end.readings):
        failures.append("end-reading: the end record holds a begin reading")
    if begin.meter_serial != end.meter_serial:
        failures.append(
            f"same-meter: begin record from {begin.meter_serial!r}, end record from {end.meter_serial!r}"
        )
    first, last = pagination_number(begin), pagination_number(end)
    if first is not None and last is not None and last <= first:
        failures.append(
            f"pagination: end record {end.pagination} does not come after begin record {begin.pagination}"
        )
    return failures


def verify_pair(
    begin: str | bytes | OcmfRecord,
    end: str | bytes | OcmfRecord,
    public_key: str | bytes,
    *,
    end_public_key: str | bytes | None = None,
) -> Verification:
    """Verify a transaction a meter signed as two records (EVerest's start_signed_meter_value and
    signed_meter_value): both signatures, every reading, and the transaction checks over both records.
    `end_public_key` verifies the end record when it came with a key of its own (default: `public_key`)."""
    first = verify(begin, public_key, transaction=False)
    last = verify(end, public_key if end_public_key is None else end_public_key, transaction=False)
    failures = [f"{f.split(':', 1)[0]}: begin record:{f.split(':', 1)[1]}" for f in first.failures]
    failures += [f"{f.split(':', 1)[0]}: end record:{f.split(':', 1)[1]}" for f in last.failures]
    failures += pair_failures(first.record, last.record)
    failures += transaction_failures(first.record.readings + last.record.readings)
    return Verification(
        valid=not failures,
        signature_valid=first.signature_valid and last.signature_valid,
        failures=failures,
        record=last.record,
        transaction_checked=True,
        begin_record=first.record,
        notes=(
            *(f"begin record: {n}" for n in first.notes),
            *(f"end record: {n}" for n in last.notes),
        ),
    )


__all__ = [
    "CURVES",
    "DEFAULT_SIGNATURE_ALGORITHM",
    "SIGNATURE_CHECK",
    "Curve",
    "OcmfRecord",
    "PublicKey",
    "Reading",
    "SignatureAlgorithm",
    "Verification",
    "key_bytes",
    "load_public_key",
    "pagination_number",
    "pair_failures",
    "parse",
    "parse_signature_algorithm",
    "record_notes",
    "transaction_failures",
    "verify",
    "verify_pair",
    "verify_signature",
]
