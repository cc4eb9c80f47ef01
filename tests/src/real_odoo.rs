//! Real Odoo servers for the test suite: Odoo Community started from `../shared/odoo` on free
//! 127.0.0.1 ports (once per test binary, stopped when it ends), or servers the user names in
//! `FREIGHTBRIDGE_TEST_ODOO` (e.g. a container in their CI), and a small JSON-RPC admin client
//! that the tests use to seed data and to check results with their own queries, independent of
//! the poster's client.
//!
//! `FREIGHTBRIDGE_TEST_ODOO` is a JSON array of servers:
//! `[{"version": 19, "url": "http://127.0.0.1:8069", "db": "test", "login": "admin",
//!    "password": "admin", "api_key": "<40 hex>"}]` (`api_key` is needed for JSON-2 on 19+).
//! Without it the harness starts Odoo 19 twice (one database per transport) and 18 once with
//! `../shared/odoo/odoo-test-server` (override with `FREIGHTBRIDGE_ODOO_SCRIPT`; choose the
//! versions with `FREIGHTBRIDGE_TEST_ODOO_VERSIONS=19,18`). When neither is available the suite
//! says why and skips, unless `FREIGHTBRIDGE_REQUIRE_ODOO=1`, when that is a failure.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// One Odoo database the tests may use.
#[derive(Debug, Clone, Deserialize)]
pub struct OdooServer {
    pub version: u8,
    pub url: String,
    pub db: String,
    pub login: String,
    pub password: String,
    #[serde(default)]
    pub api_key: Option<String>,
    /// The port of a server this harness started (and so stops).
    #[serde(skip)]
    started_port: Option<u16>,
}

/// The servers of one test run.
#[derive(Debug)]
pub struct RealOdoo {
    pub servers: Vec<OdooServer>,
    script: Option<PathBuf>,
}

/// Why the suite cannot run here.
#[derive(Debug)]
pub struct Unavailable(pub String);

pub const REQUIRE_ENV: &str = "FREIGHTBRIDGE_REQUIRE_ODOO";
pub const SERVERS_ENV: &str = "FREIGHTBRIDGE_TEST_ODOO";

impl RealOdoo {
    /// The user's servers, else servers started from `../shared/odoo`: `(version, copies)`.
    pub fn provide(wanted: &[(u8, usize)]) -> Result<RealOdoo, Unavailable> {
        if let Ok(text) = std::env::var(SERVERS_ENV)
            && !text.trim().is_empty()
        {
            let servers: Vec<OdooServer> = serde_json::from_str(&text).map_err(|e| {
                Unavailable(format!("{SERVERS_ENV} is not a JSON list of servers: {e}"))
            })?;
            if servers.is_empty() {
                return Err(Unavailable(format!("{SERVERS_ENV} names no server")));
            }
            return Ok(RealOdoo {
                servers,
                script: None,
            });
        }
        let script = std::env::var_os("FREIGHTBRIDGE_ODOO_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/odoo/odoo-test-server")
            });
        if !script.exists() {
            return Err(Unavailable(format!(
                "no {SERVERS_ENV} and no Odoo test server script at {}",
                script.display()
            )));
        }
        let uid = Command::new("id").arg("-u").output().ok();
        if uid.map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0") != Some(false) {
            return Err(Unavailable(
                "the Odoo test server script runs PostgreSQL and Odoo as a system user and needs root"
                    .into(),
            ));
        }
        let versions: Vec<(u8, usize)> = match std::env::var("FREIGHTBRIDGE_TEST_ODOO_VERSIONS") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .filter_map(|v| v.trim().parse().ok())
                .map(|v| {
                    let copies = wanted.iter().find(|(w, _)| *w == v).map_or(1, |(_, c)| *c);
                    (v, copies)
                })
                .collect(),
            _ => wanted.to_vec(),
        };
        let mut odoo = RealOdoo {
            servers: Vec::new(),
            script: Some(script.clone()),
        };
        // One version at a time: the first start of a version builds its template database
        // (minutes); the copies after it start in seconds.
        for (version, copies) in versions {
            for _ in 0..copies {
                let server = start(&script, version).map_err(Unavailable)?;
                odoo.servers.push(server);
            }
        }
        Ok(odoo)
    }

    pub fn required() -> bool {
        std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v == "true")
    }

    /// Stops the servers this harness started (and drops their databases).
    pub fn stop(&mut self) {
        let Some(script) = &self.script else { return };
        for server in &self.servers {
            if let Some(port) = server.started_port {
                let _ = Command::new(script)
                    .args(["stop", "--port", &port.to_string()])
                    .output();
            }
        }
        self.servers.clear();
    }
}

impl Drop for RealOdoo {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Deserialize)]
struct Started {
    url: String,
    db: String,
    login: String,
    password: String,
    port: u16,
}

fn start(script: &PathBuf, version: u8) -> Result<OdooServer, String> {
    let output = Command::new(script)
        .args(["start", "--version", &version.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "odoo-test-server start --version {version} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("odoo-test-server printed no server line: {stdout}"))?;
    let started: Started =
        serde_json::from_str(line).map_err(|e| format!("odoo-test-server line {line}: {e}"))?;
    let api_key = if version >= 19 {
        let key = Command::new(script)
            .args(["api-key", "--port", &started.port.to_string()])
            .output()
            .map_err(|e| format!("odoo-test-server api-key: {e}"))?;
        let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
        (!key.is_empty()).then_some(key)
    } else {
        None
    };
    Ok(OdooServer {
        version,
        url: started.url,
        db: started.db,
        login: started.login,
        password: started.password,
        api_key,
        started_port: Some(started.port),
    })
}

/// An administrator's JSON-RPC connection: the tests' own view of Odoo.
#[derive(Debug)]
pub struct Admin {
    http: reqwest::Client,
    url: String,
    db: String,
    password: String,
    uid: i64,
    pub version: u8,
    next: AtomicU64,
}

impl Admin {
    pub async fn connect(server: &OdooServer) -> Result<Admin, String> {
        let mut admin = Admin {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .map_err(|e| e.to_string())?,
            url: format!("{}/jsonrpc", server.url.trim_end_matches('/')),
            db: server.db.clone(),
            password: server.password.clone(),
            uid: 0,
            version: server.version,
            next: AtomicU64::new(1),
        };
        let uid = admin
            .rpc(
                "common",
                "authenticate",
                json!([server.db, server.login, server.password, {}]),
            )
            .await?;
        admin.uid = uid
            .as_i64()
            .ok_or_else(|| format!("Odoo refused the login {}: {uid}", server.login))?;
        Ok(admin)
    }

    async fn rpc(&self, service: &str, method: &str, args: Value) -> Result<Value, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "method": "call", "id": id,
                          "params": {"service": service, "method": method, "args": args}});
        let answer: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{service}.{method}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{service}.{method}: {e}"))?;
        if let Some(error) = answer.get("error") {
            return Err(format!(
                "{}: {}",
                error["data"]["name"].as_str().unwrap_or("error"),
                error["data"]["message"].as_str().unwrap_or_default()
            ));
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }

    /// `execute_kw(model, method, args, kwargs)`.
    pub async fn call(
        &self,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> Result<Value, String> {
        self.rpc(
            "object",
            "execute_kw",
            json!([
                self.db,
                self.uid,
                self.password,
                model,
                method,
                args,
                kwargs
            ]),
        )
        .await
        .map_err(|e| format!("{model}.{method}: {e}"))
    }

    pub async fn search_read(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
    ) -> Vec<Map<String, Value>> {
        let found = self
            .call(
                model,
                "search_read",
                json!([domain]),
                json!({"fields": fields, "order": "id asc"}),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        found
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default()
    }

    pub async fn create(&self, model: &str, vals: Value) -> i64 {
        let created = self
            .call(model, "create", json!([vals]), json!({}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        created
            .as_i64()
            .unwrap_or_else(|| panic!("{model}.create answered {created}"))
    }

    pub async fn write(&self, model: &str, ids: &[i64], vals: Value) {
        self.call(model, "write", json!([ids, vals]), json!({}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Calls a recordset method (button, action) and returns what it returned.
    pub async fn act(&self, model: &str, method: &str, ids: &[i64], context: Value) -> Value {
        self.call(model, method, json!([ids]), json!({"context": context}))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The id behind an external id (`module.name`).
    pub async fn xmlid(&self, complete: &str) -> Option<i64> {
        let (module, name) = complete.split_once('.')?;
        self.search_read(
            "ir.model.data",
            json!([["module", "=", module], ["name", "=", name]]),
            &["res_id"],
        )
        .await
        .first()
        .and_then(|r| r.get("res_id"))
        .and_then(Value::as_i64)
    }

    /// The first record matching `domain`, else one created from `vals`.
    pub async fn ensure(&self, model: &str, domain: Value, vals: Value) -> i64 {
        if let Some(found) = self.search_read(model, domain, &["id"]).await.first() {
            return found["id"].as_i64().unwrap_or_default();
        }
        self.create(model, vals).await
    }
}

/// The id of a many2one value `[id, "name"]`.
pub fn m2o(record: &Map<String, Value>, field: &str) -> Option<i64> {
    record.get(field)?.get(0)?.as_i64()
}
