//! freightbridge: the domain and adapters every function uses. Pure domain modules (canonical
//! events, partner formats, signatures, idempotency decisions) are free of I/O; AWS and Odoo sit
//! behind small traits (ports) with real adapters and in-memory doubles.

pub mod audit;
pub mod aws;
pub mod batch;
pub mod breaker;
pub mod bus;
pub mod canonical;
pub mod config;
pub mod environment;
pub mod failure;
pub mod idempotency;
pub mod ingress;
pub mod ledger;
pub mod metrics;
pub mod observability;
pub mod odoo;
pub mod ordering;
pub mod partners;
pub mod reconcile;
pub mod retry;
pub mod seen;
pub mod signature;
pub mod webhook;
