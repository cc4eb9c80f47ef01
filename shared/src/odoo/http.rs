//! HTTP plumbing both transports share: one reqwest client per Odoo, transport failures mapped to
//! retryable kinds, and replies read once with their status and whether the body is JSON.

use std::time::Duration;

use super::error::{OdooError, OdooErrorKind};

/// Connection setup never gets more than this, even with a long call timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) const USER_AGENT: &str = concat!("freightbridge/", env!("CARGO_PKG_VERSION"));

/// Redirects are not followed: Odoo 18 answers `/json/2` with a 303 to the login page, and
/// following it would turn a clear "no JSON-2 here" into a confusing HTML 200.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, OdooError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| {
            OdooError::new(
                OdooErrorKind::Config,
                format!("cannot build the HTTP client: {}", e.without_url()),
            )
        })
}

/// The URL is left out of the message: an `ODOO_URL` with user info would leak credentials.
pub(crate) fn transport_error(error: reqwest::Error) -> OdooError {
    let kind = if error.is_timeout() {
        OdooErrorKind::Timeout
    } else if error.is_builder() {
        OdooErrorKind::Config
    } else if error.is_decode() {
        OdooErrorKind::Protocol
    } else {
        OdooErrorKind::Network
    };
    let what = match kind {
        OdooErrorKind::Timeout => "Odoo did not answer in time",
        OdooErrorKind::Config => "invalid Odoo request",
        OdooErrorKind::Protocol => "unreadable answer from Odoo",
        _ => "cannot reach Odoo",
    };
    OdooError::new(kind, format!("{what}: {}", error.without_url()))
}

/// One HTTP answer, read to the end.
pub(crate) struct Reply {
    pub status: u16,
    pub is_json: bool,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Result<Reply, OdooError> {
        let status = response.status().as_u16();
        let headers = response.headers();
        let is_json = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(is_json_media_type)
            .unwrap_or(false);
        // Only the path: a redirect target can carry session tokens in its query.
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| l.split('?').next().unwrap_or_default().to_owned());
        let body = response.bytes().await.map_err(transport_error)?.to_vec();
        Ok(Reply {
            status,
            is_json,
            location,
            body,
        })
    }

    pub fn json(&self) -> Result<serde_json::Value, OdooError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            OdooError::new(
                OdooErrorKind::Protocol,
                format!("Odoo sent invalid JSON (HTTP {}): {e}", self.status),
            )
        })
    }
}

fn is_json_media_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised_with_parameters() {
        assert!(is_json_media_type("application/json; charset=utf-8"));
        assert!(is_json_media_type("Application/JSON"));
        assert!(is_json_media_type("application/problem+json"));
        assert!(!is_json_media_type("text/html; charset=utf-8"));
        assert!(!is_json_media_type("text/html;charset=utf-8"));
    }
}
