"""Seeded identities for the scenarios: RFID UIDs, EMAIDs, EVSE ids, tariff texts, transaction UUIDs.

A Faker provider, so each value has the shape the real thing has (ISO 14443 UIDs are 4 or 7 bytes in
hex, EMAIDs 14 or 15 characters, EVSE ids `CC*OOO*E...`). Every scenario gets its own Faker seeded
from the base seed and the scenario's name, so a scenario sees the same identities whatever else runs.
"""

from __future__ import annotations

import os
import uuid
import zlib

from faker import Faker
from faker.providers import BaseProvider

DEFAULT_SEED = 20240601
SEED_ENV = "METER_HIL_SEED"

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_COUNTRIES = ("DE", "AT", "NL", "FR", "CH", "BE", "DK")
_TARIFFS = ("Standard AC", "Ad-hoc", "Nachtstrom", "Flex", "Business", "Roaming")


class IdentityProvider(BaseProvider):
    """Faker provider for the identification data EvseManager passes to start_transaction."""

    def iso14443_uid(self) -> str:
        """UID of an ISO 14443 RFID card: 4 or 7 bytes, upper-case hex."""
        size = self.random_element((4, 7))
        return bytes(self.random_int(0, 255) for _ in range(size)).hex().upper()

    def iso15693_uid(self) -> str:
        """UID of an ISO 15693 card: 8 bytes, upper-case hex, starting E0 as the standard requires."""
        return "E0" + bytes(self.random_int(0, 255) for _ in range(7)).hex().upper()

    def emaid(self) -> str:
        """An e-mobility account id (ISO 15118): country, provider, 9 characters, optional check digit."""
        country = self.random_element(_COUNTRIES)
        provider = "".join(self.random_element(_ALNUM) for _ in range(3))
        instance = "".join(self.random_element(_ALNUM) for _ in range(9))
        check = self.random_element(("", self.random_element(_ALNUM)))
        return f"{country}{provider}{instance}{check}"

    def evse_id(self) -> str:
        """An EVSE id as in OCMF `CI`: country*operator*E<digits>*<connector>."""
        country = self.random_element(_COUNTRIES)
        operator = "".join(self.random_element(_ALNUM[:26]) for _ in range(3))
        return f"{country}*{operator}*E{self.random_int(1000, 99999)}*{self.random_int(1, 4)}"

    def tariff_text(self) -> str:
        """A tariff designation with a price, ASCII only (the meter stores ASCII)."""
        cents = self.random_int(29, 79)
        return f"{self.random_element(_TARIFFS)} {cents} ct/kWh"

    def transaction_uuid(self) -> str:
        """A transaction id as EvseManager makes it: a UUID, from the seeded random source."""
        return str(uuid.UUID(int=self.generator.random.getrandbits(128), version=4))

    def identification_data(self, identification_type: str) -> str:
        """Data fitting an OCMF identification type."""
        makers = {
            "ISO14443": self.iso14443_uid,
            "ISO15693": self.iso15693_uid,
            "EMAID": self.emaid,
            "CENTRAL": self.transaction_uuid,
            "LOCAL": self.transaction_uuid,
        }
        if identification_type not in makers:
            raise ValueError(f"no identity generator for identification type {identification_type!r} "
                             f"(known: {', '.join(makers)})")
        return makers[identification_type]()


def base_seed() -> int:
    """The base seed: METER_HIL_SEED if set, else a fixed default."""
    text = os.environ.get(SEED_ENV, str(DEFAULT_SEED))
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{SEED_ENV}={text!r}: expected an integer seed") from None


def identities(scenario: str, seed: int | None = None) -> Faker:
    """A Faker with IdentityProvider, seeded from the base seed and the scenario name."""
    fake = Faker()
    fake.add_provider(IdentityProvider)
    base = base_seed() if seed is None else seed
    fake.seed_instance(base ^ zlib.crc32(scenario.encode()))
    return fake
