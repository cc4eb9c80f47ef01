#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs the Python-side tools it needs (moto server
# for the AWS adapter tests, SAM CLI for the template lint) into .tools/venv, runs every Rust test
# (unit, property, moto, Odoo double, real Odoo 19 and 18, end-to-end), lints the SAM template, and
# runs the demo once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/tools.sh
export MOTO_SERVER="$root/.tools/venv/bin/moto_server"

# The real-Odoo suite (tests/tests/odoo_real.rs) starts Odoo 19 and 18 from ../shared/odoo.
# Where that is at hand (and always in CI) it must run, not skip; elsewhere it says why it skips
# (FREIGHTBRIDGE_TEST_ODOO names a user's own servers instead).
scripts/odoo-deps.sh
if [[ -x "$root/../shared/odoo/odoo-test-server" || "${CI:-}" == "true" || -n "${FREIGHTBRIDGE_TEST_ODOO:-}" ]]; then
    export FREIGHTBRIDGE_REQUIRE_ODOO=1
fi
# The exceptions report's browser test (tests/tests/report_browser.rs) drives Debian's chromium
# through chromedriver: installed when missing; where it is there (and always in CI) the test
# must run, not skip.
browser_ready=0
scripts/browser-deps.sh && browser_ready=1
if [[ "$browser_ready" == 1 || "${CI:-}" == "true" ]]; then
    export FREIGHTBRIDGE_REQUIRE_BROWSER=1
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo test"
cargo test --workspace --locked

echo "== sam validate --lint"
.tools/venv/bin/sam validate --lint --template-file infra/template.yaml --region us-east-1

echo "== benches/peer/run.sh --quick (the Python peer comparison runs; figures: without --quick)"
benches/peer/run.sh --quick

echo "== freightctl demo (the README's first command)"
cargo run --quiet --locked -p freightctl -- demo
