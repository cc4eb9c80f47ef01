//! Where Odoo is and how to log in, read from the environment. No `ODOO_URL` means no Odoo:
//! the caller runs in dry-run and journals the calls instead.

use std::time::Duration;

use crate::config::Secret;

use super::error::{OdooError, OdooErrorKind};

/// Default time allowed for one Odoo call, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /json/2/<model>/<method>` with a bearer API key (Odoo 19+).
    Json2,
    /// `POST /jsonrpc` `object.execute_kw` (Odoo 16–21; removal planned for 22).
    JsonRpc,
}

#[derive(Debug, Clone)]
pub struct OdooConfig {
    /// Base URL without a trailing slash, e.g. `https://erp.example.com`.
    pub url: String,
    /// Database name: required for JSON-RPC; for JSON-2 sent as `X-Odoo-Database` when set.
    pub db: Option<String>,
    /// Login, for JSON-RPC.
    pub user: Option<String>,
    /// API key: JSON-2's bearer token, and JSON-RPC's password when set.
    pub api_key: Option<Secret>,
    /// Password, for JSON-RPC when no API key is configured.
    pub password: Option<Secret>,
    /// `None`: detect from the server version.
    pub transport: Option<Transport>,
    pub timeout: Duration,
}

impl OdooConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_owned(),
            db: None,
            user: None,
            api_key: None,
            password: None,
            transport: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `ODOO_URL`, `ODOO_DB`, `ODOO_USER`, `ODOO_API_KEY`, `ODOO_PASSWORD`,
    /// `ODOO_TRANSPORT` (`json2` | `jsonrpc` | `auto`), `ODOO_TIMEOUT_SECS`.
    /// `Ok(None)` when `ODOO_URL` is unset or empty.
    pub fn from_env() -> Result<Option<Self>, OdooError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable source (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, OdooError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(url) = get("ODOO_URL") else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(config_error("ODOO_URL must start with http:// or https://"));
        }
        let transport = match get("ODOO_TRANSPORT")
            .map(|t| t.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("auto") => None,
            Some("json2") | Some("json-2") => Some(Transport::Json2),
            Some("jsonrpc") | Some("json-rpc") => Some(Transport::JsonRpc),
            Some(_) => {
                return Err(config_error(
                    "ODOO_TRANSPORT must be json2, jsonrpc or auto",
                ));
            }
        };
        let timeout = match get("ODOO_TIMEOUT_SECS") {
            None => DEFAULT_TIMEOUT,
            Some(s) => match s.parse::<u64>() {
                Ok(secs) if secs > 0 => Duration::from_secs(secs),
                _ => return Err(config_error("ODOO_TIMEOUT_SECS must be a positive integer")),
            },
        };
        let mut cfg = OdooConfig::new(url);
        cfg.db = get("ODOO_DB");
        cfg.user = get("ODOO_USER");
        cfg.api_key = get("ODOO_API_KEY").map(Secret::new);
        cfg.password = get("ODOO_PASSWORD").map(Secret::new);
        cfg.transport = transport;
        cfg.timeout = timeout;
        cfg.check()?;
        Ok(Some(cfg))
    }

    /// The settings a transport needs are present.
    pub fn check(&self) -> Result<(), OdooError> {
        match self.transport {
            Some(Transport::Json2) if self.api_key.is_none() => {
                Err(config_error("JSON-2 needs an API key (ODOO_API_KEY)"))
            }
            Some(Transport::JsonRpc) => self.json_rpc_login().map(|_| ()),
            None if self.api_key.is_none() && self.json_rpc_login().is_err() => Err(config_error(
                "set ODOO_API_KEY (JSON-2), or ODOO_DB, ODOO_USER and ODOO_API_KEY or ODOO_PASSWORD (JSON-RPC)",
            )),
            _ => Ok(()),
        }
    }

    /// Database, login and secret for JSON-RPC. The API key wins over the password.
    pub(crate) fn json_rpc_login(&self) -> Result<(&str, &str, &Secret), OdooError> {
        let db = self
            .db
            .as_deref()
            .ok_or_else(|| config_error("JSON-RPC needs the database name (ODOO_DB)"))?;
        let user = self
            .user
            .as_deref()
            .ok_or_else(|| config_error("JSON-RPC needs a login (ODOO_USER)"))?;
        let secret = self
            .api_key
            .as_ref()
            .or(self.password.as_ref())
            .ok_or_else(|| config_error("JSON-RPC needs ODOO_API_KEY or ODOO_PASSWORD"))?;
        Ok((db, user, secret))
    }
}

fn config_error(message: &str) -> OdooError {
    OdooError::new(OdooErrorKind::Config, message)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Option<OdooConfig>, OdooError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OdooConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn no_url_means_no_odoo() {
        assert!(load(&[]).unwrap().is_none());
        assert!(load(&[("ODOO_URL", "  ")]).unwrap().is_none());
    }

    #[test]
    fn reads_every_setting() {
        let cfg = load(&[
            ("ODOO_URL", "https://erp.example.com/"),
            ("ODOO_DB", "prod"),
            ("ODOO_USER", "bot"),
            ("ODOO_API_KEY", "k"),
            ("ODOO_TRANSPORT", "JSONRPC"),
            ("ODOO_TIMEOUT_SECS", "5"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cfg.url, "https://erp.example.com");
        assert_eq!(cfg.db.as_deref(), Some("prod"));
        assert_eq!(cfg.transport, Some(Transport::JsonRpc));
        assert_eq!(cfg.timeout, Duration::from_secs(5));
        assert_eq!(cfg.json_rpc_login().unwrap().2.expose(), "k");
        assert!(!format!("{cfg:?}").contains("\"k\""));
    }

    #[test]
    fn incomplete_settings_are_config_errors() {
        let cases: &[&[(&str, &str)]] = &[
            &[("ODOO_URL", "erp.example.com"), ("ODOO_API_KEY", "k")],
            &[
                ("ODOO_URL", "http://x"),
                ("ODOO_TRANSPORT", "xmlrpc"),
                ("ODOO_API_KEY", "k"),
            ],
            &[
                ("ODOO_URL", "http://x"),
                ("ODOO_TRANSPORT", "json2"),
                ("ODOO_PASSWORD", "p"),
            ],
            &[
                ("ODOO_URL", "http://x"),
                ("ODOO_TRANSPORT", "jsonrpc"),
                ("ODOO_API_KEY", "k"),
            ],
            &[("ODOO_URL", "http://x")],
            &[
                ("ODOO_URL", "http://x"),
                ("ODOO_API_KEY", "k"),
                ("ODOO_TIMEOUT_SECS", "0"),
            ],
        ];
        for vars in cases {
            let error = load(vars).unwrap_err();
            assert_eq!(error.kind, OdooErrorKind::Config, "{vars:?}");
        }
    }

    #[test]
    fn api_key_alone_is_enough_for_detection() {
        let cfg = load(&[("ODOO_URL", "http://x"), ("ODOO_API_KEY", "k")])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.transport, None);
    }
}
