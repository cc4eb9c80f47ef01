//! `serve` and `demo` read the poster's finance settings from `ODOO_FINANCE_CONFIG`, as the
//! poster Lambda does; `--odoo-finance` still wins over it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn freightctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_freightctl"));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    command.env_remove("ODOO_URL");
    command
}

/// Runs the command to its end, or kills it after a minute (a `serve` that ignored the settings
/// would listen forever).
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_and_demo_read_the_settings_named_by_odoo_finance_config() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("finance-from-env.toml");
    for command in ["serve", "demo"] {
        let mut cmd = freightctl();
        cmd.arg(command).env("ODOO_FINANCE_CONFIG", &missing);
        if command == "serve" {
            cmd.args(["--port", "0"]);
        }
        let output = run(cmd);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("finance-from-env.toml"),
            "{command} did not read ODOO_FINANCE_CONFIG: {stderr}"
        );
    }
    // The flag wins over the variable.
    let flag = dir.path().join("finance-from-flag.toml");
    let mut cmd = freightctl();
    cmd.args(["demo", "--odoo-finance"])
        .arg(&flag)
        .env("ODOO_FINANCE_CONFIG", &missing);
    let output = run(cmd);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("finance-from-flag.toml"), "{stderr}");
}
