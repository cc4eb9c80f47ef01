//! The shipment ledger on DynamoDB (moto): versioned saves, racing updates of one shipment
//! that all survive, and Scan pages that cover every entry once.

use std::collections::BTreeSet;
use std::sync::Arc;

use freightbridge::aws::ledger::DynamoLedger;
use freightbridge::ledger::{Change, LedgerEntry, LedgerStore, ledger_key, update};
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
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = ledger.page(after.as_deref(), 10).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        for (key, _) in &page {
            assert!(seen.insert(key.clone()), "{key} twice");
        }
        after = page.last().map(|(key, _)| key.clone());
    }
    assert_eq!(seen.len(), 25);
}
