#!/usr/bin/env bash
# The system packages the real-Odoo suite's servers need (../shared/odoo/odoo-test-server):
# PostgreSQL 15, zstd to unpack the Odoo source, and python3-venv for Odoo's own venv. Installed
# with apt-get only when missing and only as root (CI runs as root); otherwise says what is
# missing and leaves the suite to report why it cannot run.
set -euo pipefail

log() { printf 'odoo-deps.sh: %s\n' "$*" >&2; }

missing=()
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=(postgresql-15)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]}; install them (as root: apt-get install ${missing[*]})"
    exit 0
fi
log "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
