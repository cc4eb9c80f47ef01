"""The Python peer of the comparison (benches/peer/run.sh): what a team would otherwise write,
on the same inputs the Rust side wrote. The ingress check is `standardwebhooks` verify (which
parses the JSON) and the dedupe key; the full path adds one canonical event per scan, with
uuid5 ids, serialised with json.dumps. Timed over --iterations runs on one thread; prints one
JSON line of figures."""

import argparse
import json
import pathlib
import time
import uuid

from standardwebhooks.webhooks import Webhook

NAMESPACE = uuid.UUID("6b1f0d3e-3c1b-4c55-9f1e-0b8d6f5e2a10")

# EasyPost's tracker statuses onto the canonical ones (as the Rust adapter maps them).
STATUS = {
    "pre_transit": "label_created",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "delivered": "delivered",
    "available_for_pickup": "available_for_pickup",
    "return_to_sender": "returned",
    "failure": "exception",
    "cancelled": "cancelled",
    "error": "exception",
    "unknown": "unknown",
}


def check(hook, body, headers):
    payload = hook.verify(body, headers)
    delivery_id = headers["webhook-id"]
    key = uuid.uuid5(NAMESPACE, "easypost\x1f" + delivery_id)
    return payload, delivery_id, key


def transform(payload, delivery_id):
    tracker = payload["result"]
    out = []
    for position, scan in enumerate(tracker.get("tracking_details") or []):
        location = scan.get("tracking_location") or {}
        event = {
            "schema": "freightbridge.canonical.v1",
            "event_id": str(uuid.uuid5(NAMESPACE, f"easypost\x1f{delivery_id}\x1f{position}")),
            "partner": "easypost",
            "source_event_id": payload["id"],
            "correlation_id": delivery_id,
            "occurred_at": scan["datetime"],
            "shipment": {
                "tracking_number": tracker["tracking_code"],
                "carrier": tracker.get("carrier"),
            },
            "type": "shipment.status_changed",
            "status": STATUS.get(scan.get("status"), "unknown"),
            "description": scan.get("message"),
            "location": {
                "city": location.get("city"),
                "region": location.get("state"),
                "postal_code": location.get("zip"),
                "country": location.get("country"),
            },
        }
        out.append(json.dumps(event).encode())
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--inputs", required=True)
    args = parser.parse_args()
    inputs = pathlib.Path(args.inputs)
    body = (inputs / "body.json").read_bytes()
    given = json.loads((inputs / "inputs.json").read_text())
    hook = Webhook(given["secret"])
    headers = given["headers"]

    started = time.perf_counter()
    for _ in range(args.iterations):
        check(hook, body, headers)
    check_us = (time.perf_counter() - started) * 1e6 / args.iterations

    events = 0
    started = time.perf_counter()
    for _ in range(args.iterations):
        payload, delivery_id, _key = check(hook, body, headers)
        events = len(transform(payload, delivery_id))
    full_us = (time.perf_counter() - started) * 1e6 / args.iterations

    print(json.dumps({
        "implementation": "Python peer (standardwebhooks)",
        "iterations": args.iterations,
        "body_bytes": len(body),
        "events": events,
        "ingress_check_us": check_us,
        "ingress_transform_us": full_us,
    }))


if __name__ == "__main__":
    main()
