//! `freightctl reconcile report`: the exceptions report ([`ExceptionReport`]) as one
//! self-contained HTML page — inline style and script, two inline SVG bar charts, a table that
//! sorts when a header is clicked, and a Content-Security-Policy that lets it load nothing —
//! and as CSV for a spreadsheet.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, SecondsFormat, Utc};
use freightbridge::reconcile::{ExceptionReport, ExceptionRow, Tally};
use rust_decimal::Decimal;

/// What the page may load: nothing from anywhere, its own inline style and script, and
/// `data:` images.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/// The columns, as the CSV header names them.
pub const CSV_HEADER: [&str; 11] = [
    "tracking_number",
    "carrier",
    "invoice_number",
    "currency",
    "expected",
    "invoiced",
    "difference",
    "reasons",
    "since",
    "age_days",
    "amount_at_stake",
];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot render the HTML report: {0}")]
    Html(#[from] askama::Error),
    #[error("cannot write the CSV report: {0}")]
    Csv(#[from] csv::Error),
    #[error("the CSV report is not UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// Bars of a chart: the width of the label column and of the longest bar, and each bar's.
const LABEL_WIDTH: u32 = 220;
const BAR_SPAN: u32 = 300;
const VALUE_WIDTH: u32 = 260;
const BAR_HEIGHT: u32 = 20;
const BAR_GAP: u32 = 8;

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    csp: &'a str,
    generated_at: String,
    now: String,
    entries: usize,
    total: String,
    charts: Vec<Chart>,
    rows: Vec<Row>,
}

struct Chart {
    id: &'static str,
    title: &'static str,
    width: u32,
    height: u32,
    label_width: u32,
    bars: Vec<Bar>,
}

struct Bar {
    key: String,
    count: usize,
    amounts: String,
    y: u32,
    text_y: u32,
    width: u32,
    height: u32,
    value_x: u32,
}

/// A row's cells as shown (a missing amount is an empty cell).
struct Row {
    tracking_number: String,
    carrier: String,
    invoice_number: String,
    currency: String,
    expected: String,
    invoiced: String,
    difference: String,
    reasons: String,
    age_days: i64,
    amount_at_stake: String,
}

/// The report as one self-contained HTML page, generated at `generated_at`.
pub fn html(report: &ExceptionReport, generated_at: DateTime<Utc>) -> Result<String, ReportError> {
    let page = Page {
        csp: CONTENT_SECURITY_POLICY,
        generated_at: time(generated_at),
        now: time(report.now),
        entries: report.entries,
        total: amounts(&report.total.amounts),
        charts: vec![
            chart("chart-reason", "Exceptions by reason", &report.by_reason),
            chart("chart-carrier", "Exceptions by carrier", &report.by_carrier),
        ],
        rows: report.rows.iter().map(row).collect(),
    };
    Ok(page.render()?)
}

/// The report as CSV: a header row, then one row per exception; reasons joined with `;`,
/// amounts as plain decimals, times in RFC 3339.
pub fn csv(report: &ExceptionReport) -> Result<String, ReportError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    for row in &report.rows {
        writer.write_record([
            row.tracking_number.clone(),
            row.carrier.clone(),
            row.invoice_number.clone().unwrap_or_default(),
            row.currency.clone().unwrap_or_default(),
            optional(row.expected),
            optional(row.invoiced),
            optional(row.difference),
            row.reasons.join(";"),
            time(row.since),
            row.age_days.to_string(),
            row.amount_at_stake.to_string(),
        ])?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8(bytes)?)
}

fn row(row: &ExceptionRow) -> Row {
    Row {
        tracking_number: row.tracking_number.clone(),
        carrier: row.carrier.clone(),
        invoice_number: row.invoice_number.clone().unwrap_or_default(),
        currency: row.currency.clone().unwrap_or_default(),
        expected: row.expected.map(money).unwrap_or_default(),
        invoiced: row.invoiced.map(money).unwrap_or_default(),
        difference: row.difference.map(money).unwrap_or_default(),
        reasons: row.reasons.join(", "),
        age_days: row.age_days,
        amount_at_stake: money(row.amount_at_stake),
    }
}

fn chart(id: &'static str, title: &'static str, tallies: &BTreeMap<String, Tally>) -> Chart {
    let most = tallies.values().map(|t| t.count).max().unwrap_or(0).max(1);
    let mut ordered: Vec<(&String, &Tally)> = tallies.iter().collect();
    ordered.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
    let bars: Vec<Bar> = ordered
        .into_iter()
        .zip(0u32..)
        .map(|((key, tally), index)| {
            let y = index * (BAR_HEIGHT + BAR_GAP);
            let count = u32::try_from(tally.count).unwrap_or(u32::MAX);
            let most = u32::try_from(most).unwrap_or(u32::MAX);
            // At least a sliver, so a bar of one among thousands still shows.
            let width = (u64::from(count) * u64::from(BAR_SPAN) / u64::from(most)).max(2);
            let width = u32::try_from(width).unwrap_or(BAR_SPAN);
            Bar {
                key: key.clone(),
                count: tally.count,
                amounts: amounts(&tally.amounts),
                y,
                text_y: y + BAR_HEIGHT - 6,
                width,
                height: BAR_HEIGHT,
                value_x: LABEL_WIDTH + width + 6,
            }
        })
        .collect();
    let rows = u32::try_from(bars.len()).unwrap_or(u32::MAX).max(1);
    Chart {
        id,
        title,
        width: LABEL_WIDTH + BAR_SPAN + VALUE_WIDTH,
        height: rows * (BAR_HEIGHT + BAR_GAP),
        label_width: LABEL_WIDTH,
        bars,
    }
}

/// Amounts by currency, each apart: `EUR 40.00 · USD 130.00`; `no amount` when none is known.
fn amounts(amounts: &BTreeMap<String, Decimal>) -> String {
    if amounts.is_empty() {
        return "no amount".to_owned();
    }
    amounts
        .iter()
        .map(|(currency, amount)| format!("{currency} {}", money(*amount)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// An amount shown with at least cents (`5` → `5.00`, `3.859` stays).
fn money(amount: Decimal) -> String {
    let mut shown = amount;
    if shown.scale() < 2 {
        shown.rescale(2);
    }
    shown.to_string()
}

fn optional(amount: Option<Decimal>) -> String {
    amount.map(|a| a.to_string()).unwrap_or_default()
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(text: &str) -> Decimal {
        text.parse().expect("decimal")
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 9, 30, 0)
            .single()
            .expect("valid")
    }

    fn row(tracking: &str, carrier: &str, invoice: Option<&str>, amount: &str) -> ExceptionRow {
        ExceptionRow {
            tracking_number: tracking.into(),
            carrier: carrier.into(),
            invoice_number: invoice.map(str::to_owned),
            currency: Some("USD".into()),
            expected: Some(d("100")),
            invoiced: Some(d(amount)),
            difference: Some(d(amount) - d("100")),
            reasons: vec!["over_tolerance".into(), "surcharge_not_allowed".into()],
            since: at(2),
            age_days: 8,
            amount_at_stake: d(amount),
        }
    }

    fn report(rows: Vec<ExceptionRow>) -> ExceptionReport {
        let mut report = ExceptionReport::new(at(10));
        report.entries = rows.len();
        for row in &rows {
            for reason in &row.reasons {
                let tally = report.by_reason.entry(reason.clone()).or_default();
                tally.count += 1;
                *tally.amounts.entry("USD".into()).or_default() += row.amount_at_stake;
            }
            let tally = report.by_carrier.entry(row.carrier.clone()).or_default();
            tally.count += 1;
            *tally.amounts.entry("USD".into()).or_default() += row.amount_at_stake;
        }
        report.rows = rows;
        report
    }

    #[test]
    fn hostile_values_are_escaped_in_the_page() {
        let hostile = report(vec![row(
            "T<1>",
            "\"><img src=x onerror=alert(1)>",
            Some("<script>alert('x')</script>"),
            "130.00",
        )]);
        let page = html(&hostile, at(10)).expect("renders");
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains("&#60;script&#62;alert(&#39;x&#39;)"),
            "{page}"
        );
        assert!(page.contains("<td>T&#60;1&#62;</td>"), "{page}");
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn the_page_is_self_contained() {
        let page = html(
            &report(vec![row("T1", "UPS", Some("I-1"), "130.00")]),
            at(10),
        )
        .expect("renders");
        for outside in [
            "http://", "https://", "//", "src=", "href=", "url(", "@import",
        ] {
            assert!(!page.contains(outside), "{outside} in the page");
        }
        assert!(
            page.contains(&format!(
                "<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">"
            )),
            "{page}"
        );
    }

    #[test]
    fn the_page_has_the_rows_the_totals_and_a_bar_per_reason_and_carrier() {
        let page = html(
            &report(vec![
                row("T1", "UPS", Some("I-1"), "130.00"),
                row("T2", "FedEx", None, "5"),
            ]),
            at(11),
        )
        .expect("renders");
        assert!(page.contains("<table id=\"exceptions\">"));
        assert_eq!(page.matches("<tr>").count(), 3, "header and two rows");
        assert!(page.contains("Generated 2026-11-11T09:30:00Z"), "{page}");
        assert!(
            page.contains("ages counted to 2026-11-10T09:30:00Z"),
            "{page}"
        );
        assert!(
            page.contains("data-value=\"5.00\">5.00<"),
            "cents shown: {page}"
        );
        assert_eq!(
            page.matches("<rect class=\"bar\"").count(),
            4,
            "2 reasons + 2 carriers"
        );
        assert!(page.contains("over_tolerance: 2 (USD 135.00)"), "{page}");
        assert!(page.contains("aria-sort=\"descending\">Amount at stake"));
    }

    #[test]
    fn an_empty_report_says_so() {
        let page = html(&report(Vec::new()), at(10)).expect("renders");
        assert_eq!(page.matches("No exceptions").count(), 2);
        assert!(page.contains("<strong id=\"amount-total\">no amount</strong>"));
    }

    #[test]
    fn csv_has_a_header_quotes_what_needs_it_and_plain_amounts() {
        let mut second = row("T2", "Acme, \"Freight\"", None, "5");
        second.reasons = vec!["stale_accrual".into()];
        second.expected = None;
        second.difference = None;
        let text = csv(&report(vec![
            row("T1", "UPS", Some("I-1"), "130.00"),
            second,
        ]))
        .expect("writes");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        assert_eq!(
            lines[1],
            "T1,UPS,I-1,USD,100,130.00,30.00,over_tolerance;surcharge_not_allowed,2026-11-02T09:30:00Z,8,130.00"
        );
        assert_eq!(
            lines[2],
            "T2,\"Acme, \"\"Freight\"\"\",,USD,,5,,stale_accrual,2026-11-02T09:30:00Z,8,5"
        );
        assert_eq!(lines.len(), 3);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let carriers: Vec<String> = reader
            .records()
            .map(|r| r.expect("record")[1].to_owned())
            .collect();
        assert_eq!(carriers, ["UPS", "Acme, \"Freight\""]);
    }
}
