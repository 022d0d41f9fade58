"""A tiny out-of-process driver that misbehaves on purpose (tests/rigs/test_process_driver.py).

    python fake_driver.py MODE
MODE: good, crash-on-stop, hang-on-stop, garbage-on-stop, schema-on-stop, error-on-stop, exit-idle,
no-ready, bad-powermeter. It answers start OK and stop OK with a fixed record, unless MODE says otherwise.
"""

from __future__ import annotations

import json
import sys
import time

MODE = sys.argv[1]


def send(message: dict) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def main() -> int:
    print(f"fake driver: mode {MODE}", file=sys.stderr, flush=True)
    if MODE == "no-ready":
        time.sleep(30)
        return 0
    send({"method": "public_key_ocmf", "params": "3059301306072A8648CE3D0201"})
    send({"method": "ready", "params": {"publish_interval": 0.1}})
    send({"method": "powermeter", "params": {"timestamp": "2026-01-01T00:00:00Z",
                                             "energy_Wh_import": {"total": 12.5}}})
    send({"method": "raise_error", "params": {"type": "powermeter/CommunicationFault", "message": "silent"}})
    send({"method": "clear_error", "params": {"type": "powermeter/CommunicationFault", "message": "silent"}})
    if MODE == "bad-powermeter":
        send({"method": "powermeter", "params": {"timestamp": "now"}})
    if MODE == "exit-idle":
        print("fake driver: lost the serial port, exiting", file=sys.stderr, flush=True)
        return 4
    for line in sys.stdin:
        call = json.loads(line)
        if call["method"] == "start_transaction":
            send({"id": call["id"], "result": {"status": "OK"}})
            continue
        if MODE == "crash-on-stop":
            print("fake driver: segmentation fault in the meter library", file=sys.stderr, flush=True)
            return 3
        if MODE == "hang-on-stop":
            time.sleep(60)
        if MODE == "garbage-on-stop":
            print("stopping transaction now...", flush=True)
            continue
        if MODE == "schema-on-stop":
            send({"id": call["id"], "result": {"status": "FINE"}})
            continue
        if MODE == "error-on-stop":
            send({"id": call["id"], "error": {"code": -32000, "message": "meter busy"}})
            continue
        send({"id": call["id"], "result": {"status": "OK", "signed_meter_value": {
            "signed_meter_data": "OCMF|{}|{}", "signing_method": "", "encoding_method": "OCMF"}}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
