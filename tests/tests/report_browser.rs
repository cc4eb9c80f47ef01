//! `freightctl reconcile report` on a ledger with one exception of each kind (and a matched
//! invoice and a closed shipment that are not), run as the binary an operator types; its CSV
//! read back, and its HTML opened from `file://` in a real headless chromium (chromedriver):
//! the rows in amount order, the table re-sorted by clicking the amount and carrier headers,
//! a bar per reason and per carrier, a hostile invoice number shown as text, and nothing
//! loaded from outside — the page's policy refuses even a request to 127.0.0.1.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Utc};
use fantoccini::Locator;
use freightbridge::canonical::{Estimate, EstimateKind, Invoice};
use freightbridge::ledger::{
    ExpectedCost, InvoiceEntry, LedgerEntry, LedgerStore as _, MatchOutcome, ProofOfDelivery,
    ledger_key,
};
use freightbridge_tests::browser::{Browser, file_url};
use freightbridge_tests::freight_events::dec;
use freightbridge_tests::freightctl_binary;
use freightctl::durable::{Durability, Durable};
use serde_json::{Value, json};
use uuid::Uuid;

const NOW: &str = "2026-12-01T00:00:00Z";
const HOSTILE: &str = "<script>alert(1)</script>";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("time")
}

fn shipment(tracking: &str, carrier: &str) -> LedgerEntry {
    let mut entry = LedgerEntry::new(tracking);
    entry.carriers.push(carrier.to_owned());
    entry
}

fn invoice(entry: &mut LedgerEntry, number: &str, currency: &str, total: &str, received: &str) {
    let carrier = entry.carriers[0].clone();
    entry.invoices.push(InvoiceEntry {
        number: number.to_owned(),
        carrier,
        partner: "edi".to_owned(),
        shipment_carrier: None,
        correlation_id: format!("corr-{number}"),
        invoice: Invoice {
            number: number.to_owned(),
            issued_on: "2026-11-20".parse().expect("date"),
            currency: currency.to_owned(),
            total: dec(total),
            lines: Vec::new(),
            references: Vec::new(),
            parties: Vec::new(),
            delivered_on: None,
            weight: None,
        },
        received_at: at(received),
        event_id: Uuid::new_v4(),
        repeats: 0,
    });
}

fn outcome(
    entry: &mut LedgerEntry,
    number: &str,
    outcome: &str,
    reasons: &[&str],
    evidence: Value,
) {
    entry.record_outcome(MatchOutcome {
        invoice_number: number.to_owned(),
        outcome: outcome.to_owned(),
        reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        evidence,
        at: at("2026-11-29T10:00:00Z"),
        event_id: Uuid::new_v4(),
        event: None,
        published: true,
    });
}

fn delivered(entry: &mut LedgerEntry, on: &str) {
    entry.delivery = Some(ProofOfDelivery {
        delivered_at: at(on),
        signed: true,
        document_url: None,
        event_id: Uuid::new_v4(),
    });
}

fn estimated(entry: &mut LedgerEntry, currency: &str, total: &str, on: &str) {
    entry.expected = Some(ExpectedCost {
        estimate: Estimate {
            kind: EstimateKind::Booking,
            currency: currency.to_owned(),
            total: dec(total),
            lines: Vec::new(),
        },
        occurred_at: at(on),
        event_id: Uuid::new_v4(),
    });
}

/// Five exceptions (amounts at stake 1250, 480, 310, 90, 75) and two entries that are none.
fn ledger() -> Vec<LedgerEntry> {
    let mut disputed = shipment("SHP-A", "UPS");
    delivered(&mut disputed, "2026-11-20T08:00:00Z");
    estimated(&mut disputed, "USD", "1000.00", "2026-11-15T08:00:00Z");
    invoice(
        &mut disputed,
        "INV-A",
        "USD",
        "1250.00",
        "2026-11-25T08:00:00Z",
    );
    outcome(
        &mut disputed,
        "INV-A",
        "disputed",
        &["over_tolerance"],
        json!({"expected": {"currency": "USD", "total": "1000.00"}}),
    );
    let mut uninvoiced = shipment("SHP-C", "DHL");
    delivered(&mut uninvoiced, "2026-11-10T08:00:00Z");
    estimated(&mut uninvoiced, "EUR", "480.00", "2026-11-09T08:00:00Z");
    let mut waiting = shipment("SHP-B", "FedEx");
    invoice(
        &mut waiting,
        "INV-B",
        "USD",
        "310.00",
        "2026-11-28T08:00:00Z",
    );
    let mut hostile = shipment("SHP-E", "FedEx");
    invoice(
        &mut hostile,
        HOSTILE,
        "USD",
        "90.00",
        "2026-11-20T08:00:00Z",
    );
    outcome(&mut hostile, HOSTILE, "disputed", &["no_pod"], json!({}));
    let mut accrued = shipment("SHP-D", "UPS");
    estimated(&mut accrued, "USD", "75.00", "2026-10-01T08:00:00Z");
    let mut matched = shipment("SHP-F", "UPS");
    delivered(&mut matched, "2026-11-20T08:00:00Z");
    estimated(&mut matched, "USD", "500.00", "2026-11-15T08:00:00Z");
    invoice(
        &mut matched,
        "INV-F",
        "USD",
        "500.00",
        "2026-11-25T08:00:00Z",
    );
    outcome(&mut matched, "INV-F", "matched", &[], json!({}));
    let mut closed = shipment("SHP-G", "UPS");
    invoice(
        &mut closed,
        "INV-G",
        "USD",
        "9999.00",
        "2026-11-01T08:00:00Z",
    );
    outcome(&mut closed, "INV-G", "disputed", &["no_pod"], json!({}));
    closed.closed_at = Some(at("2026-11-30T08:00:00Z"));
    vec![
        disputed, uninvoiced, waiting, hostile, accrued, matched, closed,
    ]
}

async fn seed(state: &Path) {
    let durable = Durable::open(state, Durability::Normal).expect("state");
    for entry in ledger() {
        let saved = durable
            .save(&ledger_key(&entry.tracking_number), &entry, 1)
            .await
            .expect("ledger");
        assert!(saved, "{} is new", entry.tracking_number);
    }
}

/// Evaluates `script` (a function body) in the page.
async fn eval(browser: &Browser, script: &str) -> Value {
    browser
        .client
        .execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The table's column `index` (0-based), top to bottom.
async fn column(browser: &Browser, index: usize) -> Vec<String> {
    let cells = eval(
        browser,
        &format!(
            "return Array.from(document.querySelectorAll('#exceptions tbody tr'))\
             .map(function (r) {{ return r.cells[{index}].textContent.trim(); }});"
        ),
    )
    .await;
    serde_json::from_value(cells).expect("strings")
}

async fn click_header(browser: &Browser, title: &str) -> Option<String> {
    let header = browser
        .client
        .find(Locator::XPath(&format!(
            "//table[@id='exceptions']/thead//th[normalize-space(.)='{title}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("header {title}: {e}"));
    header.click().await.expect("click");
    header.attr("aria-sort").await.expect("aria-sort")
}

async fn bars(browser: &Browser, chart: &str) -> Vec<(String, u64)> {
    let bars = eval(
        browser,
        &format!(
            "return Array.from(document.querySelectorAll('#{chart} g.bar-group'))\
             .filter(function (g) {{ return g.querySelector('rect.bar'); }})\
             .map(function (g) {{ return [g.getAttribute('data-key'), Number(g.getAttribute('data-count'))]; }});"
        ),
    )
    .await;
    serde_json::from_value(bars).expect("bars")
}

#[tokio::test]
async fn the_exceptions_page_renders_sorts_and_loads_nothing_from_outside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    seed(&state).await;
    let html = dir.path().join("out").join("exceptions report.html");
    let csv = dir.path().join("out").join("exceptions.csv");
    let output = Command::new(freightctl_binary())
        .current_dir(dir.path())
        .args(["reconcile", "report", "--now", NOW, "--html"])
        .arg(&html)
        .arg("--csv")
        .arg(&csv)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .expect("freightctl runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("5 exceptions from 7 ledger entries"),
        "{printed}"
    );

    let text = std::fs::read_to_string(&csv).expect("csv written");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    let tracking: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(tracking, ["SHP-A", "SHP-C", "SHP-B", "SHP-E", "SHP-D"]);
    assert_eq!(
        &rows[3][2], HOSTILE,
        "the CSV keeps the invoice number as it is"
    );
    assert_eq!(&rows[1][7], "uninvoiced_delivery");
    assert_eq!(&rows[0][6], "250.00", "difference");

    let Some(browser) = Browser::start_or_skip().await else {
        return;
    };
    browser.client.goto(&file_url(&html)).await.expect("opens");

    assert_eq!(
        column(&browser, 0).await,
        ["SHP-A", "SHP-C", "SHP-B", "SHP-E", "SHP-D"],
        "largest amount at stake first"
    );
    assert_eq!(
        column(&browser, 9).await,
        ["1250.00", "480.00", "310.00", "90.00", "75.00"]
    );
    assert_eq!(column(&browser, 2).await[3], HOSTILE, "shown as text");
    assert_eq!(
        eval(&browser, "return document.scripts.length;").await,
        json!(1),
        "the page's own script only"
    );

    assert_eq!(
        click_header(&browser, "Amount at stake").await.as_deref(),
        Some("ascending")
    );
    assert_eq!(
        column(&browser, 9).await,
        ["75.00", "90.00", "310.00", "480.00", "1250.00"],
        "reversed, as numbers (1250 is not before 310)"
    );
    assert_eq!(
        click_header(&browser, "Amount at stake").await.as_deref(),
        Some("descending")
    );
    assert_eq!(column(&browser, 0).await[0], "SHP-A");
    assert_eq!(
        click_header(&browser, "Carrier").await.as_deref(),
        Some("ascending")
    );
    assert_eq!(
        column(&browser, 1).await,
        ["DHL", "FedEx", "FedEx", "UPS", "UPS"]
    );
    assert_eq!(
        eval(
            &browser,
            "return Array.from(document.querySelectorAll('#exceptions th[aria-sort]')).length;"
        )
        .await,
        json!(1),
        "only the header sorted by says how"
    );
    assert_eq!(
        click_header(&browser, "Carrier").await.as_deref(),
        Some("descending")
    );
    assert_eq!(column(&browser, 1).await[0], "UPS");

    let mut reasons = bars(&browser, "chart-reason").await;
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("awaiting_pod".to_owned(), 1),
            ("no_pod".to_owned(), 1),
            ("over_tolerance".to_owned(), 1),
            ("stale_accrual".to_owned(), 1),
            ("uninvoiced_delivery".to_owned(), 1),
        ]
    );
    assert_eq!(
        bars(&browser, "chart-carrier").await,
        [
            ("FedEx".to_owned(), 2),
            ("UPS".to_owned(), 2),
            ("DHL".to_owned(), 1)
        ],
        "most exceptions first"
    );

    assert_eq!(
        eval(
            &browser,
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; });"
        )
        .await,
        json!([]),
        "nothing loaded"
    );
    assert_eq!(
        eval(
            &browser,
            "return Array.from(document.querySelectorAll('[src], [href]'))\
             .map(function (e) { return e.getAttribute('src') || e.getAttribute('href'); })\
             .filter(function (u) { return /^\\s*(https?:)?\\/\\//i.test(u); });"
        )
        .await,
        json!([]),
        "no element names anything outside"
    );
    let refused = browser
        .client
        .execute_async(
            "var done = arguments[arguments.length - 1];\
             document.addEventListener('securitypolicyviolation', function (e) {\
               done(e.effectiveDirective + ' ' + e.blockedURI);\
             });\
             var probe = new Image();\
             probe.src = 'http://127.0.0.1:9/probe.png';\
             document.body.appendChild(probe);",
            Vec::new(),
        )
        .await
        .expect("the policy answers");
    assert_eq!(
        refused,
        json!("img-src http://127.0.0.1:9/probe.png"),
        "the page's policy refuses a load"
    );
    browser.close().await;
}
