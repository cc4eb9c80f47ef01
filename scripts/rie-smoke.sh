#!/usr/bin/env bash
# Runs one function binary under the AWS Lambda Runtime Interface Emulator (what `sam local
# invoke` runs inside its container) against a fresh moto server, invokes it once with an event
# file, and prints the answer, the function's log, what reached the bus, and the cold start.
# The manual twin of tests/tests/lambda_rie.rs; needs no Docker and no AWS account.
#
# Usage: scripts/rie-smoke.sh BINARY EVENT_FILE [--release]
#   scripts/rie-smoke.sh webhook-ingress     events/apigw-webhook-easypost.json
#   scripts/rie-smoke.sh canonical-transform events/sqs-transform-batch.json
#   scripts/rie-smoke.sh odoo-poster         events/sqs-odoo-batch.json --release
#   scripts/rie-smoke.sh reconciler          events/sqs-reconcile-batch.json
#   RECONCILER_MODE=sweep scripts/rie-smoke.sh reconciler events/schedule-reconcile-sweep.json
#
# It builds the binary (debug, or release with --release), starts moto and creates what the
# function's environment names: the idempotency table, a bus whose rule sends every
# freightbridge event to a queue (printed after the invoke), and a DLQ. Ingress reads partners
# from PARTNERS_FILE (default events/partners.local.toml). The poster runs in dry-run (Odoo calls
# printed as JSON lines) unless ODOO_URL & co. are exported. Needs scripts/tools.sh run once.
# Ports: RIE_PORT (default 9000) for invocations, RIE_RUNTIME_API_PORT (default 9001).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/venv"
die() { echo "rie-smoke.sh: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || die "usage: scripts/rie-smoke.sh BINARY EVENT_FILE [--release] (see the top of this file)"
BINARY="$1"
EVENT="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
PROFILE=debug
CARGO_PROFILE=()
if [[ "${3:-}" == "--release" ]]; then
    PROFILE=release
    CARGO_PROFILE=(--release)
fi
case "$BINARY" in
    webhook-ingress | canonical-transform | odoo-poster | reconciler) ;;
    *) die "unknown binary $BINARY (webhook-ingress, canonical-transform, odoo-poster or reconciler)" ;;
esac
[[ -f "$EVENT" ]] || die "no event file $2"

case "$(uname -m)" in
    aarch64 | arm64) ARCH=arm64 ;;
    *) ARCH=x86_64 ;;
esac
RIE="${AWS_LAMBDA_RIE:-$(find "$VENV/lib" -path "*/samcli/local/rapid/aws-lambda-rie-$ARCH" -print -quit 2>/dev/null || true)}"
[[ -n "$RIE" && -x "$RIE" ]] || die "the Lambda RIE was not found: run scripts/tools.sh (it installs aws-sam-cli, which ships it)"
[[ -x "$VENV/bin/moto_server" ]] || die "moto_server not found: run scripts/tools.sh"

echo "== cargo build -p $BINARY ($PROFILE)" >&2
(cd "$ROOT" && cargo build --quiet "${CARGO_PROFILE[@]}" -p "$BINARY" --bin "$BINARY")
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BOOTSTRAP="$TARGET_DIR/$PROFILE/$BINARY"

WORK="$(mktemp -d)"
MOTO_PID=""
RIE_PID=""
cleanup() {
    for pid in $RIE_PID $MOTO_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL: until something answers, at most 10 s
    for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
    return 1
}

MOTO_PORT="$(free_port)"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
wait_for "$AWS_ENDPOINT_URL/moto-api/" || die "moto did not start: $(tail -5 "$WORK/moto.log")"

# The resources, named as the template's outputs would be; prints shell assignments.
eval "$("$VENV/bin/python" - <<'PY'
import json, boto3
aws = dict(region_name="us-east-1")
ddb = boto3.client("dynamodb", **aws)
ddb.create_table(TableName="freightbridge-idempotency", BillingMode="PAY_PER_REQUEST",
                 AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
sqs = boto3.client("sqs", **aws)
events_url = sqs.create_queue(QueueName="freightbridge-events")["QueueUrl"]
dlq_url = sqs.create_queue(QueueName="freightbridge-dlq")["QueueUrl"]
work_url = sqs.create_queue(QueueName="freightbridge-work")["QueueUrl"]
events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
eb = boto3.client("events", **aws)
eb.create_event_bus(Name="freightbridge-smoke")
eb.put_rule(Name="everything", EventBusName="freightbridge-smoke",
            EventPattern=json.dumps({"source": ["freightbridge.ingress", "freightbridge.canonical",
                                                "freightbridge.reconciliation"]}))
eb.put_targets(Rule="everything", EventBusName="freightbridge-smoke",
               Targets=[{"Id": "events", "Arn": events_arn}])
print(f"EVENTS_QUEUE_URL={events_url}\nDLQ_URL={dlq_url}\nWORK_QUEUE_URL={work_url}")
PY
)"
# The ledger (poster's Odoo notes, the reconciler) shares the table: the same key layout.
export IDEMPOTENCY_TABLE=freightbridge-idempotency IDEMPOTENCY_TTL_DAYS=7 DLQ_URL
export LEDGER_TABLE=freightbridge-idempotency QUEUE_URL="$WORK_QUEUE_URL"
if [[ -z "${RECONCILE_CONFIG:-}" && -f "$ROOT/events/reconcile.local.toml" ]]; then
    RECONCILE_CONFIG="$(cat "$ROOT/events/reconcile.local.toml")"
    export RECONCILE_CONFIG
fi
export EVENT_BUS_NAME=freightbridge-smoke MAX_RECEIVE_COUNT=5
export PARTNERS_FILE="${PARTNERS_FILE:-$ROOT/events/partners.local.toml}"
export AWS_LAMBDA_FUNCTION_NAME="$BINARY" AWS_LAMBDA_FUNCTION_TIMEOUT="${AWS_LAMBDA_FUNCTION_TIMEOUT:-30}"
export RUST_LOG="${RUST_LOG:-info,aws_config=warn,aws_smithy_runtime=warn,hyper_util=warn,rustls=warn}"

RIE_PORT="${RIE_PORT:-9000}"
"$RIE" --runtime-interface-emulator-address "127.0.0.1:$RIE_PORT" \
    --runtime-api-address "127.0.0.1:${RIE_RUNTIME_API_PORT:-9001}" \
    "$BOOTSTRAP" >"$WORK/rie.log" 2>&1 &
RIE_PID=$!
INVOKE="http://127.0.0.1:$RIE_PORT/2015-03-31/functions/function/invocations"
wait_for "http://127.0.0.1:$RIE_PORT/" || die "RIE did not start: $(cat "$WORK/rie.log")"

echo "== invoke $BINARY with $(basename "$EVENT")" >&2
ANSWER="$(curl -s -w '\nHTTP %{http_code}' -X POST --data-binary @"$EVENT" "$INVOKE")"
echo "$ANSWER"
echo "== function and RIE log" >&2
cat "$WORK/rie.log"
echo "== events on the bus (rule -> queue)" >&2
"$VENV/bin/python" - "$EVENTS_QUEUE_URL" <<'PY'
import sys, boto3
sqs = boto3.client("sqs", region_name="us-east-1")
messages = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10).get("Messages", [])
for m in messages:
    print(m["Body"])
print(f"({len(messages)} event(s))")
PY
echo "== cold start: $(grep -o 'INIT REPORT([^)]*)' "$WORK/rie.log" | head -1)" >&2
