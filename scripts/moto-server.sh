#!/usr/bin/env bash
# Runs a moto server (the AWS emulator) in the foreground on 127.0.0.1 for trying the functions
# and freightctl against AWS APIs by hand. Tests do not need it: they start their own server.
# Usage: scripts/moto-server.sh [PORT]   (default 5000; Ctrl-C stops it, state is lost)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${1:-5000}"

if [[ -n "${MOTO_SERVER:-}" ]]; then
    MOTO="$MOTO_SERVER"
elif [[ -x "$ROOT/.tools/venv/bin/moto_server" ]]; then
    MOTO="$ROOT/.tools/venv/bin/moto_server"
elif command -v moto_server >/dev/null 2>&1; then
    MOTO="$(command -v moto_server)"
else
    echo "moto-server.sh: moto_server not found; run scripts/tools.sh first" >&2
    exit 1
fi

cat >&2 <<HINT
moto-server.sh: starting $MOTO on 127.0.0.1:$PORT. In another shell:
  export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
HINT
exec "$MOTO" -H 127.0.0.1 -p "$PORT"
