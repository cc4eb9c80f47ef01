//! `freightctl send`: sign a body as the partner would and post it to an ingress URL.

use std::time::Duration;

use chrono::Utc;
use freightbridge::config::{PartnerConfig, SecretRef, resolve_local};
use freightbridge::partners::Format;
use freightbridge::signature::{Scheme, sign};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("partner {0}: {1}")]
    Partner(String, String),
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// What the ingress answered.
#[derive(Debug, Clone)]
pub struct SendResult {
    pub status: u16,
    pub body: serde_json::Value,
}

/// The headers (signature and content type) a partner would send with `body`.
pub fn partner_headers(
    partner: &PartnerConfig,
    body: &[u8],
    message_id: &str,
) -> Result<Vec<(String, String)>, SendError> {
    let fail = |m: String| SendError::Partner(partner.id.clone(), m);
    let scheme = Scheme::from_config(&partner.signature).map_err(|e| fail(e.to_string()))?;
    let secret = partner
        .signature
        .secrets
        .iter()
        .filter_map(|s| SecretRef::parse(s).ok())
        .find_map(|r| resolve_local(&r).ok())
        .ok_or_else(|| fail("no secret of this partner can be resolved locally".into()))?;
    let mut headers =
        sign(&scheme, &secret, body, Utc::now(), message_id).map_err(|e| fail(e.to_string()))?;
    let content_type = match &partner.content_types {
        Some(types) if !types.is_empty() => types[0].clone(),
        _ => Format::parse(&partner.format)
            .and_then(|f| f.default_content_types().first().copied())
            .unwrap_or("application/json")
            .to_owned(),
    };
    headers.push(("content-type".into(), content_type));
    Ok(headers)
}

/// Post `body` with `headers` to `url`.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<SendResult, SendError> {
    let mut request = client.post(url).timeout(Duration::from_secs(30)).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok(SendResult { status, body })
}
