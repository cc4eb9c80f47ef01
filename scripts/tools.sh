#!/usr/bin/env bash
# Installs the Python-side tools freightbridge uses into .tools/venv at the repo root:
# moto[server] (the AWS emulator the adapter tests start) and aws-sam-cli (`sam validate`,
# `sam build`, and the Lambda Runtime Interface Emulator shipped in its wheel).
# Idempotent and non-interactive, so CI (CI=true, no stdin) can run it on every build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/venv"
BIN="$VENV/bin"

# Ranges known to work together (moto 5.2.5 + aws-sam-cli 1.170.0 at the time of writing);
# aws-sam-cli pins boto3, and moto 5 accepts that pin.
MOTO_SPEC='moto[server]>=5.1,<6'
SAM_SPEC='aws-sam-cli>=1.140,<2'

log() { printf 'tools.sh: %s\n' "$*" >&2; }

have_tools() {
    [[ -x "$BIN/moto_server" && -x "$BIN/sam" && -x "$BIN/python" ]]
}

make_venv() {
    mkdir -p "$ROOT/.tools"
    if python3 -m venv "$VENV" >/dev/null 2>&1; then
        return 0
    fi
    # Debian ships venv (and ensurepip) separately; only root can add it, and only once.
    rm -rf "$VENV"
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "python3 -m venv failed; installing python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null >/dev/null
        apt-get install -y -qq python3-venv </dev/null >/dev/null
        python3 -m venv "$VENV"
    else
        log "python3 -m venv failed and we cannot install python3-venv (need root and apt-get)"
        exit 1
    fi
}

if have_tools; then
    log "already installed"
else
    command -v python3 >/dev/null 2>&1 || { log "python3 is required"; exit 1; }
    [[ -x "$BIN/python" ]] || make_venv
    log "installing $MOTO_SPEC and $SAM_SPEC into $VENV (quietly)"
    "$BIN/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "$MOTO_SPEC" "$SAM_SPEC" </dev/null
    have_tools || { log "install finished but moto_server or sam is missing from $BIN"; exit 1; }
fi

case "$(uname -m)" in
    aarch64 | arm64) RIE_ARCH=arm64 ;;
    *) RIE_ARCH=x86_64 ;;
esac
RIE="$(find "$VENV/lib" -path "*/samcli/local/rapid/aws-lambda-rie-$RIE_ARCH" -print -quit 2>/dev/null || true)"
echo "moto_server: $BIN/moto_server"
echo "sam:         $BIN/sam"
if [[ -n "$RIE" ]]; then
    echo "lambda RIE:  $RIE"
fi
