"""OCMF records the meter signs: the payload built from a transaction, and the meter's ECDSA key."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

IDENTIFICATION_LEVELS = (
    "NONE",
    "HEARSAY",
    "TRUSTED",
    "VERIFIED",
    "CERTIFIED",
    "SECURE",
    "MISMATCH",
    "INVALID",
    "OUTDATED",
    "UNKNOWN",
)
IDENTIFICATION_FLAGS = (
    "RFID_NONE",
    "RFID_PLAIN",
    "RFID_RELATED",
    "RFID_PSK",
    "OCPP_NONE",
    "OCPP_RS",
    "OCPP_AUTH",
    "OCPP_RS_TLS",
    "OCPP_AUTH_TLS",
    "OCPP_CACHE",
    "OCPP_WHITELIST",
    "OCPP_CERTIFIED",
    "ISO15118_NONE",
    "ISO15118_PNC",
    "PLMN_NONE",
    "PLMN_RING",
    "PLMN_SMS",
)
IDENTIFICATION_TYPES = (
    "NONE",
    "DENIED",
    "UNDEFINED",
    "ISO14443",
    "ISO15693",
    "EMAID",
    "EVCCID",
    "EVCOID",
    "ISO7812",
    "CARD_TXN_NR",
    "CENTRAL",
    "CENTRAL_1",
    "CENTRAL_2",
    "LOCAL",
    "LOCAL_1",
    "LOCAL_2",
    "PHONE_NUMBER",
    "KEY_CODE",
)
UNSET = 0xFFFF

_CURVES: dict[str, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    "secp256r1": (ec.SECP256R1, hashes.SHA256),
    "secp384r1": (ec.SECP384R1, hashes.SHA384),
    "brainpoolP256r1": (ec.BrainpoolP256R1, hashes.SHA256),
    "brainpoolP384r1": (ec.BrainpoolP384R1, hashes.SHA256),  # SHA-256, as the EM580 signs (its SA says so)
}


@dataclass(frozen=True)
class Identification:
    """The OCMF identification data written before start (indices as in the register map)."""

    status: int = 0
    level: int = UNSET
    flags: tuple[int, ...] = ()
    type: int = 0
    data: str = ""
    tariff_text: str = ""
    evse_id: str = ""

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (for the state file)."""
        return {
            "IS": self.status,
            "IL": self.level,
            "IF": list(self.flags),
            "IT": self.type,
            "ID": self.data,
            "TT": self.tariff_text,
            "CI": self.evse_id,
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Identification:
        """Inverse of to_json."""
        return cls(
            int(d["IS"]),
            int(d["IL"]),
            tuple(int(x) for x in d["IF"]),
            int(d["IT"]),  # type: ignore[arg-type,union-attr]
            str(d["ID"]),
            str(d["TT"]),
            str(d["CI"]),
        )


@dataclass(frozen=True)
class Reading:
    """A begin or end reading: the energy register and the meter clock at that instant."""

    energy_register: int
    energy_wh: float
    tm: str

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (for the state file)."""
        return {"register": self.energy_register, "wh": self.energy_wh, "tm": self.tm}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Reading:
        """Inverse of to_json."""
        return cls(int(d["register"]), float(d["wh"]), str(d["tm"]))  # type: ignore[arg-type]


def format_tm(utc_seconds: float, utc_offset_min: int, synchronised: bool) -> str:
    """OCMF TM: local time "YYYY-MM-DDThh:mm:ss,fff+hhmm" and the clock-status letter S or U."""
    local = utc_seconds + utc_offset_min * 60
    whole = int(local // 1)
    millis = round((local - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    sign = "+" if utc_offset_min >= 0 else "-"
    hh, mm = divmod(abs(utc_offset_min), 60)
    return f"{stamp},{millis:03d}{sign}{hh:02d}{mm:02d} {'S' if synchronised else 'U'}"


def derive_private_key(curve: str, secret: str) -> ec.EllipticCurvePrivateKey:
    """A deterministic key from a secret string (seed and serial), so seeded runs are reproducible."""
    curve_cls = _CURVES[curve][0]
    order = _ORDERS[curve]
    scalar = int.from_bytes(hashlib.sha512(secret.encode()).digest(), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, curve_cls())


_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
    ),
    "brainpoolP256r1": 0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
    "brainpoolP384r1": int(
        "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7CF3AB6AF6B7FC3103B883202E9046565", 16
    ),
}


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """PEM text of the private key (kept in the meter's state file)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def load_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """Inverse of private_key_pem."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the stored key is not an EC key")
    return key


def public_key_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    """DER SubjectPublicKeyInfo of the public key, as served from the public key registers."""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signature_algorithm(curve: str) -> str:
    """OCMF SA for a curve, e.g. ECDSA-secp256r1-SHA256."""
    return f"ECDSA-{curve}-{_CURVES[curve][1].name.upper()}"


@dataclass(frozen=True)
class RecordData:
    """Everything a signed record says."""

    pagination: int
    vendor: str
    model: str
    serial: str
    firmware: str
    identification: Identification
    begin: Reading | None
    end: Reading | None
    """A record signed apart holds one of the two readings (the other None)."""


def build_payload(d: RecordData) -> str:
    """The OCMF payload JSON, ASCII, compact, keys in the order of docs/meters/reference.md."""
    ident = d.identification
    payload: dict[str, object] = {
        "FV": "1.3",
        "GI": d.model,
        "GS": d.serial,
        "GV": d.firmware,
        "PG": f"T{d.pagination}",
        "MV": d.vendor,
        "MM": d.model,
        "MS": d.serial,
        "MF": d.firmware,
        "IS": bool(ident.status),
    }
    if ident.level != UNSET:
        payload["IL"] = IDENTIFICATION_LEVELS[ident.level]
    payload["IF"] = [IDENTIFICATION_FLAGS[f] for f in ident.flags]
    payload["IT"] = IDENTIFICATION_TYPES[ident.type]
    payload["ID"] = ident.data
    if ident.tariff_text:
        payload["TT"] = ident.tariff_text
    if ident.evse_id:
        payload["CT"] = "EVSEID"
        payload["CI"] = ident.evse_id
    payload["RD"] = [_reading(r, tx) for r, tx in ((d.begin, "B"), (d.end, "E")) if r is not None]
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True)


def _reading(r: Reading, tx: str) -> dict[str, object]:
    return {
        "TM": r.tm,
        "TX": tx,
        "RV": round(r.energy_register / 10000, 4),
        "RI": "1-b:1.8.0",
        "RU": "kWh",
        "RT": "AC",
        "EF": "",
        "ST": "G",
    }


def sign_record(payload: str, key: ec.EllipticCurvePrivateKey, curve: str, worst_case: bool = False) -> str:
    """The full record OCMF|payload|{"SA":...,"SD":...}; ECDSA over the exact payload bytes.

    worst_case=True puts a placeholder of the longest DER signature instead (to size the record)."""
    digest = _CURVES[curve][1]()
    if worst_case:
        signature = b"\xff" * (2 * (key.curve.key_size + 7) // 8 + 9)
    else:
        signature = key.sign(payload.encode("ascii"), ec.ECDSA(digest))
    sig = json.dumps({"SA": signature_algorithm(curve), "SD": signature.hex().upper()}, separators=(",", ":"))
    return f"OCMF|{payload}|{sig}"
