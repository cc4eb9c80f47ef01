#!/usr/bin/env bash
# The headless browser the exceptions report's test drives (tests/tests/report_browser.rs):
# Debian's chromium and its chromedriver (chromium-driver). Installed with apt-get only when
# missing — as root directly, else through sudo — and `apt-get update` only when the install
# fails on a stale package list. Exits 0 when both are there afterwards, 1 when they are not
# (the test then skips, unless FREIGHTBRIDGE_REQUIRE_BROWSER=1).
set -euo pipefail

log() { printf 'browser-deps.sh: %s\n' "$*" >&2; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} and no apt-get here; install them another way"
    exit 1
fi
as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        log "missing ${missing[*]}; install them as root: apt-get install ${missing[*]}"
        exit 1
    fi
    as_root=(sudo -n)
fi

install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}
log "installing ${missing[*]} with apt-get"
if ! install; then
    log "install failed; updating the package lists and trying again"
    "${as_root[@]}" apt-get update -qq </dev/null >/dev/null || true
    if ! install; then
        log "could not install ${missing[*]}"
        exit 1
    fi
fi
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
