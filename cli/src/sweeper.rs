//! The local chain's housekeeping task: sweeps the state file (`Durable::sweep`) once at start
//! and then every `interval`, so expired idempotency records, latest milestones and seen sets,
//! and archived envelopes past their retention, do not pile up in it. It stops with the
//! chain's shutdown, between two chunks of a sweep if one is running.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::durable::{Durable, Swept};

/// How the sweeper runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepConfig {
    /// Time between two sweeps (the first one runs at start).
    pub interval: Duration,
    /// How long archived envelopes are kept; `None` keeps them forever.
    pub archive_retention: Option<Duration>,
}

/// The shortest interval the sweeper accepts: a zero would make it spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// What the sweeper has done since the chain started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepTotals {
    /// Sweeps that finished.
    pub sweeps: u64,
    /// Sweeps that failed (the database was unavailable); the next one tries again.
    pub failures: u64,
    pub removed: Swept,
}

/// Shared with the chain, so its owner can see that sweeps happen.
#[derive(Debug, Default)]
pub struct Sweeps {
    totals: Mutex<SweepTotals>,
}

impl Sweeps {
    pub fn totals(&self) -> SweepTotals {
        *self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, outcome: Option<&Swept>) {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Some(swept) => {
                totals.sweeps += 1;
                totals.removed.add(swept);
            }
            None => totals.failures += 1,
        }
    }
}

/// Starts the sweeper; it ends once `stopped` turns true (or its sender is dropped).
pub fn spawn(
    state: Arc<Durable>,
    config: SweepConfig,
    mut stopped: watch::Receiver<bool>,
) -> (Arc<Sweeps>, JoinHandle<()>) {
    let sweeps = Arc::new(Sweeps::default());
    let interval = config.interval.max(MIN_INTERVAL);
    let task = {
        let sweeps = sweeps.clone();
        tokio::spawn(async move {
            while !*stopped.borrow() {
                sweep_once(&state, config.archive_retention, &stopped, &sweeps).await;
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    changed = stopped.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    (sweeps, task)
}

async fn sweep_once(
    state: &Arc<Durable>,
    archive_retention: Option<Duration>,
    stopped: &watch::Receiver<bool>,
    sweeps: &Sweeps,
) {
    let (state, stopped) = (state.clone(), stopped.clone());
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        state.sweep_while(Utc::now(), archive_retention, || !*stopped.borrow())
    })
    .await;
    match outcome {
        Ok(Ok(swept)) => {
            tracing::info!(
                removed = swept.total(),
                idempotency = swept.idempotency,
                latest = swept.latest,
                seen_scopes = swept.seen_scopes,
                seen_entries = swept.seen_entries,
                archive = swept.archive,
                audit = swept.audit,
                took_ms = started.elapsed().as_millis() as u64,
                "state swept"
            );
            sweeps.record(Some(&swept));
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "state sweep failed; the next one tries again");
            sweeps.record(None);
        }
        Err(join) => {
            tracing::error!(error = %join, "state sweep task failed");
            sweeps.record(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use freightbridge::bus::{BusEvent, EventBus as _};
    use freightbridge::config::PartnersFile;
    use freightbridge::idempotency::IdempotencyStore as _;
    use freightbridge::odoo::{DryRunJournal, OdooClient};

    use super::*;
    use crate::chain::{Chain, ChainConfig};

    const PARTNERS: &str = include_str!("../../events/partners.local.toml");

    /// Waits until `done` holds or `within` passes; answers whether it held.
    async fn eventually(within: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !done() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    #[tokio::test]
    async fn the_chain_sweeps_at_start_then_every_interval_and_stops_with_its_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let journal = DryRunJournal::open(&dir.path().join("journal.jsonl"))
            .await
            .unwrap();
        let mut config = ChainConfig::new(
            PartnersFile::parse(PARTNERS).unwrap(),
            dir.path().join("state"),
        );
        config.sweep_interval = Duration::from_millis(50);
        config.archive_retention = Some(Duration::from_millis(300));
        let chain = Chain::start(config, OdooClient::dry_run(journal)).unwrap();
        assert!(
            eventually(Duration::from_secs(5), || chain.sweeps.totals().sweeps >= 1).await,
            "a sweep at start"
        );

        // Put after the first sweep: only a later, periodic one can remove them.
        chain.state.complete("expired", "{}", 1).await.unwrap();
        chain.state.complete("live", "{}", i64::MAX).await.unwrap();
        let event = BusEvent {
            source: "test".into(),
            detail_type: "nothing.routed".into(),
            detail: "{}".into(),
        };
        chain.bus.publish(&[event]).await.unwrap();
        assert_eq!(chain.bus.archive().unwrap().len(), 1);

        let state = chain.state.clone();
        let gone = eventually(Duration::from_secs(5), || {
            let archive_empty = chain.bus.archive().is_ok_and(|a| a.is_empty());
            // The counts are recorded just after the rows went: wait for them too.
            let removed = chain.sweeps.totals().removed;
            archive_empty && removed.idempotency >= 1 && removed.archive >= 1
        })
        .await;
        let totals = chain.sweeps.totals();
        assert!(
            gone,
            "the expired record and the old envelope went: {totals:?}"
        );
        assert_eq!(state.get("expired").await.unwrap(), None);
        assert!(state.get("live").await.unwrap().is_some());
        assert!(totals.sweeps >= 2, "{totals:?}");
        assert_eq!(totals.removed.archive, 1);
        assert_eq!(totals.failures, 0);

        let sweeps = chain.sweeps.clone();
        assert!(
            chain.shutdown(Duration::from_secs(5)).await,
            "stopped in time"
        );
        let after_stop = sweeps.totals().sweeps;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            sweeps.totals().sweeps,
            after_stop,
            "no sweep after shutdown"
        );
    }
}
