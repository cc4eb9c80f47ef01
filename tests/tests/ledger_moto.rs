//! The shipment ledger on DynamoDB (moto): versioned saves, racing updates of one shipment
//! that all survive, Scan pages that cover every entry once and skip the documents beside the
//! shipments (invoice-number index, lane costs), which race as safely.

use std::collections::BTreeSet;
use std::sync::Arc;

use freightbridge::aws::ledger::DynamoLedger;
use freightbridge::ledger::docs::{InvoiceIndex, invoice_key};
use freightbridge::ledger::{
    Change, LedgerDocs, LedgerEntry, LedgerStore, ledger_key, read_doc, update, update_doc,
};
use freightbridge::reconcile::{InvoiceSighting, Receipt};
use freightbridge_tests::moto::MotoServer;

async fn ledger() -> DynamoLedger {
    let moto = MotoServer::shared();
    // The ledger table has the idempotency table's key layout: partition key `id` (S).
    let table = moto.create_idempotency_table().await;
    DynamoLedger::new(moto.dynamodb(), table)
}

#[tokio::test]
async fn saves_are_conditional_on_the_version() {
    let ledger = ledger().await;
    let mut entry = LedgerEntry::new("1Z1");
    assert!(ledger.save("ledger#1Z1", &entry, 1).await.expect("save"));
    assert!(
        !ledger.save("ledger#1Z1", &entry, 1).await.expect("save"),
        "exists"
    );
    entry.carriers.push("FedEx".into());
    assert!(
        !ledger.save("ledger#1Z1", &entry, 3).await.expect("save"),
        "a version skipped"
    );
    assert!(ledger.save("ledger#1Z1", &entry, 2).await.expect("save"));
    let stored = ledger
        .load("ledger#1Z1")
        .await
        .expect("load")
        .expect("entry");
    assert_eq!((stored.version, stored.entry), (2, entry));
    assert!(ledger.load("ledger#none").await.expect("load").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_of_one_shipment_are_all_kept() {
    let ledger = Arc::new(ledger().await);
    let mut tasks = Vec::new();
    for n in 0..12 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            update(&*ledger, "1Z2", |entry| {
                entry.carriers.push(format!("c{n}"));
                Change::Changed
            })
            .await
        }));
    }
    for task in tasks {
        task.await.expect("joined").expect("updated");
    }
    let stored = ledger
        .load(&ledger_key("1Z2"))
        .await
        .expect("load")
        .expect("entry");
    assert_eq!(stored.entry.carriers.len(), 12, "no update lost");
    assert_eq!(stored.version, 12);
}

#[tokio::test]
async fn pages_cover_every_entry_once() {
    let ledger = ledger().await;
    for n in 0..25 {
        let key = ledger_key(&format!("T{n}"));
        assert!(
            ledger
                .save(&key, &LedgerEntry::new(&format!("T{n}")), 1)
                .await
                .expect("save")
        );
    }
    // Documents in the same table are not shipments: the pages pass them by.
    for n in 0..7 {
        assert!(
            ledger
                .save_doc(&invoice_key("UPS", &format!("INV-{n}")), "{}", 1)
                .await
                .expect("save doc")
        );
    }
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = ledger.page(after.as_deref(), 10).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        for (key, _) in &page {
            assert!(key.starts_with("ledger#"), "{key}");
            assert!(seen.insert(key.clone()), "{key} twice");
        }
        after = page.last().map(|(key, _)| key.clone());
    }
    assert_eq!(seen.len(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_receipts_of_one_invoice_number_are_all_indexed() {
    let ledger = Arc::new(ledger().await);
    let key = invoice_key("UPS", "INV-RACE");
    assert!(
        !ledger.save_doc(&key, "{}", 2).await.expect("save doc"),
        "no version 1 yet"
    );
    let mut tasks = Vec::new();
    for n in 0..12u128 {
        let (ledger, key) = (ledger.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let sighting = InvoiceSighting {
                carrier: "UPS".into(),
                tracking_number: format!("1Z{n}"),
                number: "INV-RACE".into(),
                currency: "USD".into(),
                total: rust_decimal::Decimal::from(100),
                receipt: Receipt {
                    received_at: chrono::DateTime::UNIX_EPOCH,
                    event_id: uuid::Uuid::from_u128(n),
                },
            };
            update_doc(&*ledger, &key, |index: &mut InvoiceIndex| {
                index.add(sighting.clone())
            })
            .await
        }));
    }
    for task in tasks {
        task.await.expect("joined").expect("indexed");
    }
    let index: InvoiceIndex = read_doc(&*ledger, &key).await.expect("read");
    assert_eq!(index.sightings.len(), 12);
    let (_, version) = ledger.load_doc(&key).await.expect("load").expect("doc");
    assert_eq!(version, 12, "one version per receipt");
}
