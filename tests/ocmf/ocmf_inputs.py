"""Records wrapped the way users receive them: the Transparenzsoftware's XML, a line file, OCPP JSON.

Written here in those shapes (no file of the Transparenzsoftware is copied): an XML `<values>` of
`<value transactionId context>` with `<signedData format="OCMF" encoding>` and `<publicKey encoding>`;
OCPP 1.6 MeterValues with a SignedData sampled value; OCPP 2.0.1 TransactionEvent with signedMeterValue.
"""

from __future__ import annotations

import base64
import json
from xml.sax.saxutils import escape, quoteattr

FORMATS = ("xml", "lines", "ocpp16", "ocpp201", "ocpp201-base64")


def xml_values(
    records: list[str],
    public_key: str | None,
    *,
    contexts: list[str] | None = None,
    encoding: str = "plain",
    key_encoding: str = "hex",
) -> str:
    values = []
    for index, record in enumerate(records):
        data = base64.b64encode(record.encode()).decode() if encoding == "base64" else record
        context = (contexts or [])[index] if contexts else None
        attributes = ' transactionId="4711"' + (f" context={quoteattr(context)}" if context else "")
        key = ""
        if public_key is not None:
            key = f'\n    <publicKey encoding="{key_encoding}">{escape(public_key)}</publicKey>'
        values.append(
            f'  <value{attributes}>\n    <signedData format="OCMF" encoding="{encoding}">{escape(data)}'
            f"</signedData>{key}\n  </value>"
        )
    return '<?xml version="1.0" encoding="UTF-8"?>\n<values>\n' + "\n".join(values) + "\n</values>\n"


def line_file(records: list[str]) -> str:
    return "# OCMF records, one a line\n\n" + "\n".join(records) + "\n"


def ocpp16_meter_values(records: list[str], *, base64_data: bool = False) -> str:
    """MeterValues.req: one meterValue each record, the record as a SignedData sampled value."""
    meter_values = []
    for record in records:
        value = base64.b64encode(record.encode()).decode() if base64_data else record
        meter_values.append(
            {
                "timestamp": "2026-11-23T02:00:00Z",
                "sampledValue": [
                    {"value": "23734", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": value, "context": "Transaction.End", "format": "SignedData"},
                ],
            }
        )
    return json.dumps({"connectorId": 1, "transactionId": 42, "meterValue": meter_values}, indent=1)


def ocpp201_transaction_event(
    records: list[str], public_key: str | None, *, base64_data: bool = False
) -> str:
    """TransactionEventRequest (Ended), each record as a signedMeterValue on the energy register."""
    meter_values = []
    for record in records:
        data = base64.b64encode(record.encode()).decode() if base64_data else record
        meter_values.append(
            {
                "timestamp": "2026-11-23T02:00:00Z",
                "sampledValue": [
                    {
                        "value": 23734,
                        "context": "Transaction.End",
                        "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "Wh"},
                        "signedMeterValue": {
                            "signedMeterData": data,
                            "signingMethod": "",
                            "encodingMethod": "OCMF",
                            "publicKey": public_key or "",
                        },
                    }
                ],
            }
        )
    payload = {
        "eventType": "Ended",
        "timestamp": "2026-11-23T02:00:01Z",
        "triggerReason": "StopAuthorized",
        "seqNo": 3,
        "transactionInfo": {"transactionId": "tx-42"},
        "meterValue": meter_values,
    }
    return json.dumps(payload, indent=1)


def wrap(input_format: str, records: list[str], public_key: str) -> tuple[str, str | None]:
    """(file content, the key to give on the command line: None when the file carries it)."""
    if input_format == "xml":
        return xml_values(records, public_key), None
    if input_format == "lines":
        return line_file(records), public_key
    if input_format == "ocpp16":
        return ocpp16_meter_values(records), public_key
    if input_format == "ocpp201":
        return ocpp201_transaction_event(records, public_key), None
    if input_format == "ocpp201-base64":
        return ocpp201_transaction_event(records, public_key, base64_data=True), None
    raise ValueError(input_format)
