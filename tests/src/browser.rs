//! A real headless browser for the tests that render a page: Debian's `chromium`, driven
//! through `chromedriver` (WebDriver) on a free 127.0.0.1 port, with a fresh profile and a
//! proxy that goes nowhere, so the browser itself reaches nothing outside either.
//!
//! `scripts/browser-deps.sh` installs both. When either is missing, [`Browser::start_or_skip`]
//! says why and answers `None` — unless `FREIGHTBRIDGE_REQUIRE_BROWSER=1`, where a missing
//! browser fails the test. `CHROMIUM` and `CHROMEDRIVER` name other binaries.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

/// Set to `1` where the browser must be there (CI, or once `browser-deps.sh` installed it).
pub const REQUIRE_ENV: &str = "FREIGHTBRIDGE_REQUIRE_BROWSER";

const CHROMIUM_NAMES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];
const DRIVER_NAMES: [&str; 1] = ["chromedriver"];
/// How long chromedriver may take to listen.
const DRIVER_START: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{0}")]
    Missing(String),
    #[error("cannot start chromedriver {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chromedriver did not listen on 127.0.0.1:{0} within {DRIVER_START:?}")]
    NotListening(u16),
    #[error("no free port on 127.0.0.1: {0}")]
    Port(std::io::Error),
    #[error("cannot make a browser profile directory: {0}")]
    Profile(std::io::Error),
    #[error("chromedriver refused a session: {0}")]
    Session(#[from] fantoccini::error::NewSessionError),
}

/// The binaries found.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Binaries {
    /// `CHROMIUM` / `CHROMEDRIVER` when set, else the first of the usual names on `PATH`.
    pub fn find() -> Result<Binaries, BrowserError> {
        let chromium = from_env_or_path("CHROMIUM", &CHROMIUM_NAMES).ok_or_else(|| {
            BrowserError::Missing(
                "no chromium on PATH (scripts/browser-deps.sh installs it)".to_owned(),
            )
        })?;
        let chromedriver = from_env_or_path("CHROMEDRIVER", &DRIVER_NAMES).ok_or_else(|| {
            BrowserError::Missing(
                "no chromedriver on PATH (Debian's chromium-driver; scripts/browser-deps.sh)"
                    .to_owned(),
            )
        })?;
        Ok(Binaries {
            chromium,
            chromedriver,
        })
    }
}

fn from_env_or_path(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless chromium session. Call [`Browser::close`] at the end so the browser quits;
/// dropping it stops chromedriver either way.
pub struct Browser {
    pub client: Client,
    // Dropped after the client's session: the driver, then the profile.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Whether a missing browser fails instead of skipping.
    pub fn required() -> bool {
        std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1")
    }

    /// A browser, or `None` after saying why there is none (a missing browser when it is
    /// required, and any failure to start one that is there, panics).
    pub async fn start_or_skip() -> Option<Browser> {
        match Binaries::find() {
            Ok(binaries) => match Browser::start(&binaries).await {
                Ok(browser) => Some(browser),
                Err(e) => panic!(
                    "{} and {} are there, but: {e}",
                    binaries.chromium.display(),
                    binaries.chromedriver.display()
                ),
            },
            Err(e) if Browser::required() => panic!("{e} and {REQUIRE_ENV}=1"),
            Err(e) => {
                eprintln!("skipped: {e} (set {REQUIRE_ENV}=1 to fail instead)");
                None
            }
        }
    }

    /// Starts chromedriver on a free 127.0.0.1 port and opens a headless session.
    pub async fn start(binaries: &Binaries) -> Result<Browser, BrowserError> {
        let port = free_port()?;
        let child = Command::new(&binaries.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| BrowserError::Spawn {
                path: binaries.chromedriver.clone(),
                source,
            })?;
        let driver = Driver { child, port };
        wait_listening(driver.port)?;
        let profile = tempfile::tempdir().map_err(BrowserError::Profile)?;
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&binaries.chromium, profile.path()))
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await?;
        Ok(Browser {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// Ends the session (the browser quits); chromedriver stops as the value drops.
    pub async fn close(self) {
        if let Err(e) = self.client.clone().close().await {
            eprintln!("closing the browser session: {e}");
        }
    }
}

fn capabilities(chromium: &Path, profile: &Path) -> serde_json::Map<String, serde_json::Value> {
    let args = vec![
        "--headless=new".to_owned(),
        // Root in CI's container has no user namespace for chromium's sandbox.
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-default-apps".to_owned(),
        "--disable-extensions".to_owned(),
        // Any request the browser would make goes to a port nobody listens on.
        "--proxy-server=127.0.0.1:9".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,900".to_owned(),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium.display().to_string(),
            "args": args,
        }),
    );
    capabilities
}

fn free_port() -> Result<u16, BrowserError> {
    let listener =
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).map_err(BrowserError::Port)?;
    let port = listener.local_addr().map_err(BrowserError::Port)?.port();
    Ok(port)
}

fn wait_listening(port: u16) -> Result<(), BrowserError> {
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    let started = Instant::now();
    while started.elapsed() < DRIVER_START {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BrowserError::NotListening(port))
}

/// `file://` URL of a local file (absolute; each path segment percent-encoded as needed).
pub fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for byte in path.display().to_string().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(char::from(byte));
            }
            other => url.push_str(&format!("%{other:02X}")),
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_encode_what_a_url_cannot_hold() {
        assert_eq!(
            file_url(Path::new("/tmp/a b/report#1.html")),
            "file:///tmp/a%20b/report%231.html"
        );
    }
}
