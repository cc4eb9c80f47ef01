//! Harnesses shared by the workspace-level tests: a moto server (the AWS wire protocol on
//! 127.0.0.1), a stateful Odoo double speaking JSON-2 and JSON-RPC as real servers do, and real
//! Odoo servers from `../shared/odoo` with an admin client for the real-Odoo suite; what the
//! poster is handed (`poster_input`) and the finance events it is sent (`freight_events`); a
//! headless chromium through chromedriver for the pages freightctl writes (`browser`).

pub mod browser;
pub mod freight_events;
pub mod moto;
pub mod odoo_double;
pub mod poster_input;
pub mod real_odoo;

/// `target/<profile>/freightctl`, beside the running test's own `deps/` directory (built by
/// `cargo test --workspace`).
pub fn freightctl_binary() -> std::path::PathBuf {
    use std::path::Path;
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join("freightctl");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p freightctl` first)",
        binary.display()
    );
    binary
}
