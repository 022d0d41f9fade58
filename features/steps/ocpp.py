"""Steps of the OCPP mapping: what the driver under test returned, carried into OCPP 1.6 and 2.0.1.

The payloads are built from the driver's own answers (its readings and its signed value) and checked
against the schemas bundled in the `ocpp` package, independently of driver.ocpp's own validation; each
value in them is compared with what the driver returned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import ocpp as ocpp_package
from pytest_bdd import then

from driver import ocmf
from driver import ocpp as driver_ocpp
from rigs import Rig

from .context import Context, evse, signed_record

OCPP_SCHEMAS = Path(ocpp_package.__file__).parent
OCPP_16_TRANSACTION_ID = 1  # OCPP 1.6 numbers transactions itself (the CSMS gives the number)
EVSE_ID = 1


def schema_errors(payload: dict[str, Any], version: str, name: str) -> list[str]:
    schema_file = OCPP_SCHEMAS / f"v{version}" / "schemas" / f"{name}.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8-sig"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def last_reading(rig: Rig, ctx: Context) -> Any:
    """The last reading the scenario waited for, else the last one the driver published."""
    readings = ctx.readings or evse(rig).readings()
    assert readings, "the driver published no reading"
    return readings[-1][1]


def signed_value(ctx: Context) -> Any:
    assert ctx.stop_response is not None and ctx.stop_response.signed_meter_value is not None, (
        "no stop gave a signed meter value")
    return ctx.stop_response.signed_meter_value


@then("the driver's signed meter value is as EVerest carries it")
def signed_value_as_everest(rig: Rig, ctx: Context) -> None:
    """signed_meter_data the plain OCMF string, encoding_method "OCMF", signing_method "" or the record's
    own SA, and a public_key, when given, the one the driver publishes."""
    signed = signed_value(ctx)
    assert signed.signed_meter_data.startswith("OCMF|"), (
        f"signed_meter_data is not the plain OCMF string: {signed.signed_meter_data[:40]!r}")
    assert signed.encoding_method == "OCMF", f"encoding_method {signed.encoding_method!r}, not 'OCMF'"
    algorithm = ocmf.parse(signed.signed_meter_data).signature_section.get("SA")
    assert signed.signing_method in ("", algorithm), (
        f"signing_method {signed.signing_method!r} is neither '' nor the record's SA {algorithm!r}")
    if signed.public_key:
        published = evse(rig).driver.public_key_ocmf
        assert signed.public_key.lower() == (published or "").lower(), (
            f"public_key {signed.public_key[:24]!r}... is not the OCMF public key the driver publishes")


def assert_energy_is_drivers(version: str, periodic: dict[str, Any], reading: Any) -> None:
    """The periodic payload's total import energy is the one the driver's reading gave."""
    sampled = periodic["meterValue"][0]["sampledValue"]
    energy = [float(s["value"]) for s in sampled
              if s.get("measurand") == "Energy.Active.Import.Register" and "phase" not in s
              and s.get("format", "Raw") == "Raw" and "signedMeterValue" not in s]
    assert energy == [reading.energy_Wh_import.total], (
        f"OCPP {version}: the energy sampled {energy} is not the driver's "
        f"{reading.energy_Wh_import.total} Wh")


@then("the OCPP 1.6 MeterValues.req for the transaction is valid against its schema")
def ocpp16_valid(rig: Rig, ctx: Context) -> None:
    signed = signed_value(ctx)
    reading = last_reading(rig, ctx)
    periodic = driver_ocpp.meter_values_request_v16(EVSE_ID, reading, context="Sample.Periodic",
                                                    transaction_id=OCPP_16_TRANSACTION_ID)
    end = driver_ocpp.meter_values_request_v16(EVSE_ID, reading, context="Transaction.End",
                                               transaction_id=OCPP_16_TRANSACTION_ID, signed=signed)
    stop = driver_ocpp.stop_transaction_request_v16(OCPP_16_TRANSACTION_ID, reading, signed=signed)
    for payload, name in ((periodic, "MeterValues"), (end, "MeterValues"), (stop, "StopTransaction")):
        errors = schema_errors(payload, "16", name)
        assert not errors, f"OCPP 1.6 {name}: {errors}"
    assert_energy_is_drivers("1.6", periodic, reading)
    ctx.ocpp["1.6"] = [end, stop]


@then("the OCPP 2.0.1 MeterValuesRequest for the transaction is valid against its schema")
def ocpp201_valid(rig: Rig, ctx: Context) -> None:
    assert ctx.request is not None, "no identification given"
    signed = signed_value(ctx)
    reading = last_reading(rig, ctx)
    periodic = driver_ocpp.meter_values_request_v201(EVSE_ID, reading, context="Sample.Periodic")
    end = driver_ocpp.meter_values_request_v201(EVSE_ID, reading, context="Transaction.End",
                                                signed=signed)
    ended = driver_ocpp.transaction_event_request_v201(
        "Ended", timestamp=reading.timestamp, trigger_reason="StopAuthorized", seq_no=2,
        transaction_id=ctx.request.transaction_id, evse_id=EVSE_ID, stopped_reason="Local",
        meter_values=[driver_ocpp.meter_value_v201(reading, "Transaction.End", signed)])
    for payload, name in ((periodic, "MeterValuesRequest"), (end, "MeterValuesRequest"),
                          (ended, "TransactionEventRequest")):
        errors = schema_errors(payload, "201", name)
        assert not errors, f"OCPP 2.0.1 {name}: {errors}"
    assert_energy_is_drivers("2.0.1", periodic, reading)
    for s in end["meterValue"][0]["sampledValue"]:
        if "signedMeterValue" in s:
            carried = s["signedMeterValue"]
            assert carried["encodingMethod"] == signed.encoding_method, "OCPP 2.0.1: encodingMethod differs"
            assert carried["signingMethod"] == signed.signing_method, "OCPP 2.0.1: signingMethod differs"
    ctx.ocpp["2.0.1"] = [end, ended]


@then("the OCPP payloads carry the signed meter value unchanged")
def ocpp_carries_record(ctx: Context) -> None:
    record = signed_record(ctx)
    for version in ("1.6", "2.0.1"):
        assert version in ctx.ocpp, f"no OCPP {version} payload was built: check it against its schema first"
        for payload in ctx.ocpp[version]:
            text = json.dumps(payload)
            assert json.dumps(record)[1:-1] in text, f"OCPP {version}: signed record missing"
    end_16 = ctx.ocpp["1.6"][0]["meterValue"][0]["sampledValue"]
    signed_16 = [s for s in end_16 if s.get("format") == "SignedData"]
    assert [s["value"] for s in signed_16] == [record], "OCPP 1.6: SignedData value is not the record"
    end_201 = ctx.ocpp["2.0.1"][0]["meterValue"][0]["sampledValue"]
    signed_201 = [s["signedMeterValue"] for s in end_201 if "signedMeterValue" in s]
    assert [s["signedMeterData"] for s in signed_201] == [record], "OCPP 2.0.1: signedMeterData differs"
