"""The transaction id carried in OCMF's tariff text, for meters that know no transaction id.

EVerest's EM580 driver writes TT as `<tariff text><=><transaction id>`; meter-hil's Iskra and EM580
protocols do the same, so that after a restart the driver can tell which transaction a meter runs and
which transaction a stored record belongs to.
"""

from __future__ import annotations

from driver.protocol import CommandFailed
from driver.types import TransactionReq

SEPARATOR = "<=>"


def tariff_with_id(req: TransactionReq, max_length: int) -> str:
    """TT for req; CommandFailed naming tariff_text when the id leaves it too little room."""
    tariff = req.tariff_text or ""
    text = f"{tariff}{SEPARATOR}{req.transaction_id}"
    if len(text) > max_length:
        room = max_length - len(SEPARATOR) - len(req.transaction_id)
        raise CommandFailed(f"tariff_text: {len(tariff)} characters; with the transaction id in TT this "
                            f"meter takes at most {room}")
    return text


def transaction_id_of(tariff_text: object) -> str:
    """The transaction id in a TT ("" when it carries none)."""
    if not isinstance(tariff_text, str) or SEPARATOR not in tariff_text:
        return ""
    return tariff_text.rpartition(SEPARATOR)[2]
