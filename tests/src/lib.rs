//! Harnesses shared by the workspace-level tests: a moto server (the AWS wire protocol on
//! 127.0.0.1) and a stateful Odoo double speaking JSON-2 and JSON-RPC as real servers do.

pub mod moto;
pub mod odoo_double;
