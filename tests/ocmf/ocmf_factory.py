"""Test records signed with real keys, the way meters write them.

Signing uses the `ecdsa` package with RFC 6979 deterministic nonces and keys derived from a seed, so every
record is byte-for-byte the same on every run; verification in driver.ocmf uses OpenSSL (cryptography)
for every curve it has, so signer and verifier are different implementations.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import ecdsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from driver.ocmf import CURVES

BEGIN_TIME = "2026-11-23T01:00:00,000+0000 S"
END_TIME = "2026-11-23T02:00:00,000+0000 S"


@dataclass(frozen=True)
class MeterKey:
    """A meter's key pair on one OCMF curve."""

    curve: str
    signing_key: ecdsa.SigningKey

    def point(self, form: str = "uncompressed") -> bytes:
        """SEC 1 point: "uncompressed" 04||X||Y, "raw" X||Y, "compressed" 02/03||X."""
        return self.signing_key.get_verifying_key().to_string(form)

    def der(self) -> bytes:
        """SubjectPublicKeyInfo, from OpenSSL where it has the curve (a second implementation), else ecdsa."""
        curve = CURVES[self.curve]
        if curve.openssl_curve is None:
            return self.signing_key.get_verifying_key().to_der()
        public = ec.EllipticCurvePublicKey.from_encoded_point(curve.openssl_curve(), self.point())
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_key(self, form: str = "der-hex") -> str | bytes:
        """The public key written the way `form` names: der-hex, der-hex-spaced, der-base64, pem, der-bytes,
        raw-hex, uncompressed-hex, uncompressed-base64, compressed-hex."""
        der = self.der()
        forms: dict[str, str | bytes] = {
            "der-hex": der.hex().upper(),
            "der-hex-spaced": " ".join(der.hex().upper()[i : i + 4] for i in range(0, 2 * len(der), 4)),
            "der-base64": base64.b64encode(der).decode(),
            "der-bytes": der,
            "pem": "-----BEGIN PUBLIC KEY-----\n"
            + "\n".join(base64.b64encode(der).decode()[i : i + 64] for i in range(0, 4 * len(der), 64))
            + "\n-----END PUBLIC KEY-----\n",
            "raw-hex": self.point("raw").hex(),
            "uncompressed-hex": self.point().hex(),
            "uncompressed-base64": base64.b64encode(self.point()).decode(),
            "compressed-hex": self.point("compressed").hex(),
        }
        return forms[form]


def meter_key(curve: str, seed: int = 1) -> MeterKey:
    """A deterministic key: the secret is derived from the curve name and the seed."""
    order = CURVES[curve].order
    digest = hashlib.sha512(f"meter-hil test key:{curve}:{seed}".encode()).digest()
    secret = int.from_bytes(digest, "big") % (order - 1) + 1
    return MeterKey(curve, ecdsa.SigningKey.from_secret_exponent(secret, curve=CURVES[curve].ecdsa_curve))


def sign_numbers(payload: str | bytes, key: MeterKey, hash_name: str = "SHA256") -> tuple[int, int]:
    """(r, s) over the payload bytes, deterministic (RFC 6979)."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    hash_function = getattr(hashlib, hash_name.lower())
    return key.signing_key.sign_digest_deterministic(
        hash_function(data).digest(),
        hashfunc=hash_function,
        sigencode=lambda r, s, order: (r, s),
        allow_truncate=True,
    )


def der_integer(value: int, *, non_minimal: bool = False, sign_pad: bool = True) -> bytes:
    content = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    if sign_pad and content[0] & 0x80:
        content = b"\x00" + content
    if non_minimal:
        content = b"\x00" + content  # a leading zero byte DER forbids and some meters write
    return bytes([0x02, len(content)]) + content


def der_signature(r: int, s: int, *, non_minimal: bool = False, sign_pad: bool = True) -> bytes:
    body = der_integer(r, non_minimal=non_minimal, sign_pad=sign_pad) + der_integer(s, sign_pad=sign_pad)
    return bytes([0x30, len(body)]) + body


def reading(
    tm: str | None = BEGIN_TIME, tx: str | None = "B", rv: Any = 1.234, **fields: Any
) -> dict[str, Any]:
    """One RD entry; fields set to None are left out (as meters leave out inherited fields)."""
    entry = {"TM": tm, "TX": tx, "RV": rv, "RI": "1-0:1.8.0", "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"}
    entry.update(fields)
    return {k: v for k, v in entry.items() if v is not None}


def transaction_readings(begin: Any = 1.234, end: Any = 12.5) -> list[dict[str, Any]]:
    return [reading(BEGIN_TIME, "B", begin), reading(END_TIME, "E", end)]


def payload(readings: list[dict[str, Any]] | None = None, **fields: Any) -> str:
    """Compact payload JSON, as most meters write it."""
    body: dict[str, Any] = {
        "FV": "1.0",
        "GI": "meter-hil test gateway",
        "GS": "GW-0001",
        "GV": "1.0.0",
        "PG": "T1",
        "MV": "meter-hil",
        "MM": "SIM-1",
        "MS": "SIM0000001",
        "IS": True,
        "IL": "HEARSAY",
        "IF": ["RFID_PLAIN", "OCPP_NONE", "ISO15118_NONE", "PLMN_NONE"],
        "IT": "ISO14443",
        "ID": "0A1B2C3D",
        "RD": readings if readings is not None else transaction_readings(),
    }
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}, separators=(",", ":"))


def record(
    payload_text: str,
    key: MeterKey,
    *,
    sa: str | None = "auto",
    se: str | None = None,
    signature_form: str = "der",
    hash_name: str = "SHA256",
) -> str:
    """A signed record. sa "auto" names the key's curve; None leaves SA out (the default secp256r1 applies).
    se None leaves SE out (hex applies). signature_form: der, der-non-minimal, der-no-sign-pad, raw."""
    r, s = sign_numbers(payload_text, key, hash_name)
    size = CURVES[key.curve].size
    signature = {
        "der": lambda: der_signature(r, s),
        "der-non-minimal": lambda: der_signature(r, s, non_minimal=True),
        "der-no-sign-pad": lambda: der_signature(r, s, sign_pad=False),
        "raw": lambda: r.to_bytes(size, "big") + s.to_bytes(size, "big"),
    }[signature_form]()
    section: dict[str, str] = {}
    if sa == "auto":
        section["SA"] = f"ECDSA-{key.curve}-{hash_name}"
    elif sa is not None:
        section["SA"] = sa
    if se is not None:
        section["SE"] = se
    section["SD"] = base64.b64encode(signature).decode() if se == "base64" else signature.hex().upper()
    return f"OCMF|{payload_text}|{json.dumps(section, separators=(',', ':'))}"
