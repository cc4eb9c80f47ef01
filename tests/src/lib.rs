//! test harness

pub mod moto;
