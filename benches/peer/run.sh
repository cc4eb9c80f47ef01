#!/usr/bin/env bash
# Ours against the Python a team would otherwise write, side by side in one run on the same
# inputs (benches/peer/README.md). Installs the Python peer (standardwebhooks) in
# .tools/peer-venv, runs the Rust side (cli/examples/peer.rs, release) and the peer on the
# 3.5 KB EasyPost sample signed with the Standard Webhooks scheme, and prints each figure and
# the ratio. `--quick`: a few hundred iterations on the debug build, to check that it runs (CI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

iterations=20000
profile=(--release)
if [[ "${1:-}" == "--quick" ]]; then
    iterations=300
    profile=()
fi

venv="$root/.tools/peer-venv"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check 'standardwebhooks==1.3.0'

inputs="$(mktemp -d)"
trap 'rm -rf "$inputs"' EXIT
rust="$(cargo run --quiet --locked "${profile[@]}" -p freightctl --example peer -- \
    --iterations "$iterations" --inputs "$inputs")"
python="$("$venv/bin/python" "$root/benches/peer/peer.py" --iterations "$iterations" --inputs "$inputs")"

python3 - "$rust" "$python" <<'PY'
import json, sys
rust, peer = (json.loads(arg) for arg in sys.argv[1:3])
if rust["events"] != peer["events"] or rust["events"] == 0:
    sys.exit(f"the two sides made different events: {rust['events']} vs {peer['events']}")
print(f"{rust['body_bytes']} B body, {rust['events']} events, {rust['iterations']} iterations "
      f"(Rust {rust['profile']} build)")
print(f"{'':28}{'Rust':>12}{'Python':>12}{'ratio':>9}")
for key, label in (("ingress_check_us", "ingress check (µs)"),
                   ("ingress_transform_us", "ingress + transform (µs)")):
    ratio = peer[key] / rust[key] if rust[key] else float("inf")
    print(f"{label:28}{rust[key]:>12.1f}{peer[key]:>12.1f}{ratio:>8.1f}×")
PY
