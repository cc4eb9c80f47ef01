//! The reconciler's findings sweep over a ledger of 100 000 shipments (`cargo bench -p
//! freightctl --bench sweep`; `-- --items N` for another size), in memory and in the local
//! chain's embedded database, report only (nothing published). Prints the figures; a bench binary
//! rather than criterion, since one pass is the measurement.
//!
//! The ledger is a month of traffic: of every ten shipments, four matched and settled (closed),
//! two delivered and not invoiced (half of them overdue), two invoiced and waiting for their proof
//! of delivery (half overdue), and two with an estimate only (half of them older than the accrual
//! age).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use freightbridge::bus::memory::MemoryBus;
use freightbridge::canonical::{Estimate, EstimateKind, Invoice, InvoiceDate};
use freightbridge::ledger::{
    ExpectedCost, InvoiceEntry, LedgerDocs, LedgerEntry, LedgerStore, MemoryLedger,
    ProofOfDelivery, ledger_key,
};
use freightbridge::reconcile::ReconcileConfig;
use freightctl::durable::{Durability, Durable};
use reconciler::Reconciler;
use rust_decimal::Decimal;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0)
        .single()
        .expect("valid time")
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - Duration::days(days)
}

fn invoice(number: &str, total: Decimal, received_at: DateTime<Utc>, id: u128) -> InvoiceEntry {
    InvoiceEntry {
        number: number.to_owned(),
        carrier: "UPS".into(),
        partner: "ups-edi".into(),
        shipment_carrier: None,
        correlation_id: format!("delivery-{id}"),
        invoice: Invoice {
            number: number.to_owned(),
            issued_on: received_at.date_naive() as InvoiceDate,
            currency: "USD".into(),
            total,
            lines: Vec::new(),
            references: Vec::new(),
            parties: Vec::new(),
            delivered_on: None,
            weight: None,
        },
        received_at,
        event_id: Uuid::from_u128(id),
        repeats: 0,
    }
}

/// Shipment `i` of the month described above.
fn shipment(i: u64) -> LedgerEntry {
    let mut entry = LedgerEntry::new(&format!("1Z{i:016}"));
    entry
        .carriers
        .push(if i.is_multiple_of(3) { "FedEx" } else { "UPS" }.into());
    let age = i64::try_from(i % 40).unwrap_or(0);
    let total = Decimal::new(10_000 + i64::try_from(i % 5_000).unwrap_or(0), 2);
    let estimate = |entry: &mut LedgerEntry, at| {
        entry.expected = Some(ExpectedCost {
            estimate: Estimate {
                kind: EstimateKind::Booking,
                currency: "USD".into(),
                total,
                lines: Vec::new(),
            },
            occurred_at: at,
            event_id: Uuid::from_u128(u128::from(i) << 8),
        });
    };
    let deliver = |entry: &mut LedgerEntry, at| {
        entry.delivery = Some(ProofOfDelivery {
            delivered_at: at,
            signed: true,
            document_url: None,
            event_id: Uuid::from_u128((u128::from(i) << 8) | 1),
        });
    };
    let id = (u128::from(i) << 8) | 2;
    match i % 10 {
        0..=3 => {
            estimate(&mut entry, days_ago(age + 5));
            deliver(&mut entry, days_ago(age + 2));
            entry
                .invoices
                .push(invoice(&format!("INV-{i}"), total, days_ago(age), id));
            entry.closed_at = Some(days_ago(age / 2));
        }
        4 | 5 => {
            estimate(&mut entry, days_ago(age + 3));
            deliver(
                &mut entry,
                days_ago(if i.is_multiple_of(2) { 20 } else { 3 }),
            );
        }
        6 | 7 => {
            estimate(&mut entry, days_ago(age + 3));
            entry.invoices.push(invoice(
                &format!("INV-{i}"),
                total,
                days_ago(if i.is_multiple_of(2) { 12 } else { 2 }),
                id,
            ));
        }
        _ => estimate(
            &mut entry,
            days_ago(if i.is_multiple_of(2) { 45 } else { 10 }),
        ),
    }
    entry.updated_at = Some(now());
    entry
}

async fn seed(store: &impl LedgerStore, items: u64) -> f64 {
    let started = Instant::now();
    for i in 0..items {
        let entry = shipment(i);
        let saved = store
            .save(&ledger_key(&entry.tracking_number), &entry, 1)
            .await
            .expect("the ledger saves");
        assert!(saved, "a fresh key saves");
    }
    started.elapsed().as_secs_f64()
}

async fn sweep(name: &str, store: impl LedgerStore + LedgerDocs, items: u64, seeded_in: f64) {
    let reconciler = Reconciler::new(
        store,
        MemoryBus::new(),
        Arc::new(ReconcileConfig::default()),
    );
    let started = Instant::now();
    let run = reconciler
        .sweep(now(), false, "bench")
        .await
        .expect("the sweep runs");
    let took = started.elapsed().as_secs_f64();
    assert_eq!(run.summary.entries, usize::try_from(items).unwrap_or(0));
    println!(
        "{name:<22} {items:>7} entries  seeded {seeded_in:>6.2} s  swept {took:>6.3} s  \
         {rate:>9.0} entries/s  {per:>6.2} µs/entry  findings {findings}",
        rate = items as f64 / took,
        per = took * 1e6 / items as f64,
        findings = run.summary.findings(),
    );
    for (kind, tally) in &run.summary.by_kind_and_carrier {
        println!("    {kind:<30} {:>7}", tally.count);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut items: u64 = 100_000;
    while let Some(arg) = args.next() {
        if arg == "--items" {
            items = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--items takes a count");
        }
    }
    let memory = MemoryLedger::new();
    let seeded = seed(&memory, items).await;
    sweep("memory ledger", memory, items, seeded).await;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let durable = Durable::open(dir.path(), Durability::Normal).expect("the state opens");
    let seeded = seed(&durable, items).await;
    sweep("embedded db (SQLite)", durable, items, seeded).await;
}
