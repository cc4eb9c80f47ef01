//! test harness

pub mod odoo_double;
