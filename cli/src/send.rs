//! `freightctl send`: sign a body as the partner would and post it to an ingress URL.

use std::time::Duration;

use chrono::Utc;
use freightbridge::config::{PartnerConfig, SecretRef, resolve_local};
use freightbridge::partners::Format;
use freightbridge::signature::{Scheme, query_parameter, sign};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("partner {0}: {1}")]
    Partner(String, String),
    #[error("invalid URL: {0}")]
    Url(String),
    /// Built with the URL removed: a query-token partner's URL holds its token.
    #[error("request failed: {0}")]
    Http(reqwest::Error),
}

impl From<reqwest::Error> for SendError {
    fn from(error: reqwest::Error) -> Self {
        SendError::Http(error.without_url())
    }
}

/// What the ingress answered.
#[derive(Debug, Clone)]
pub struct SendResult {
    pub status: u16,
    pub body: serde_json::Value,
}

/// The headers (signature and content type) a partner would send with `body`. A query-token
/// partner's token comes back as a `?<parameter>` pair, which [`post`] puts in the URL.
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

/// Post `body` with `headers` to `url`; `?<parameter>` pairs from [`partner_headers`] go into
/// the URL's query string.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<SendResult, SendError> {
    let mut url = reqwest::Url::parse(url).map_err(|e| SendError::Url(e.to_string()))?;
    let parameters: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| query_parameter(name).map(|p| (p, value.as_str())))
        .collect();
    if !parameters.is_empty() {
        // A URL copied from the partner's settings may already carry a (stale) token: ours
        // replaces it rather than sending two, which ingress refuses.
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| !parameters.iter().any(|(p, _)| name == p))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .extend_pairs(parameters);
    }
    let mut request = client.post(url).timeout(Duration::from_secs(30)).body(body);
    for (name, value) in headers {
        if query_parameter(name).is_none() {
            request = request.header(name, value);
        }
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok(SendResult { status, body })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::{RawQuery, State};
    use axum::http::HeaderMap;
    use axum::routing::post as route_post;

    use super::*;

    /// What the receiving end saw: the raw query string and the header names.
    type Seen = Arc<Mutex<Vec<(Option<String>, Vec<String>)>>>;

    async fn serve(seen: Seen) -> std::net::SocketAddr {
        async fn record(
            State(seen): State<Seen>,
            RawQuery(query): RawQuery,
            headers: HeaderMap,
        ) -> &'static str {
            let names = headers.keys().map(|n| n.as_str().to_owned()).collect();
            seen.lock().unwrap().push((query, names));
            "{}"
        }
        let app = axum::Router::new()
            .route("/webhooks/{partner}", route_post(record))
            .with_state(seen);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn partner(toml: &str) -> PartnerConfig {
        let file = freightbridge::config::PartnersFile::parse(toml).unwrap();
        file.partner.into_iter().next().unwrap()
    }

    #[tokio::test]
    async fn query_token_partner_gets_its_token_in_the_url_not_in_a_header() {
        let seen = Seen::default();
        let addr = serve(seen.clone()).await;
        let shippo = partner(
            "[[partner]]\nid = \"shippo\"\nformat = \"easypost\"\n[partner.signature]\nscheme = \"query-token\"\nsecrets = [\"tok+en/1\"]\n",
        );
        let headers = partner_headers(&shippo, b"{}", "m").unwrap();
        let url = format!("http://{addr}/webhooks/shippo?carrier=usps&token=stale");
        let result = post(&reqwest::Client::new(), &url, &headers, b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(result.status, 200);
        let seen = seen.lock().unwrap();
        let (query, names) = &seen[0];
        // Other parameters are kept, a stale token replaced; the token is encoded so that `+`
        // and `/` survive.
        assert_eq!(query.as_deref(), Some("carrier=usps&token=tok%2Ben%2F1"));
        assert!(names.iter().all(|n| !n.contains("token")), "{names:?}");
        assert!(names.contains(&"content-type".to_owned()));
    }

    #[tokio::test]
    async fn header_schemes_send_no_query_string() {
        let seen = Seen::default();
        let addr = serve(seen.clone()).await;
        let carrier = partner(
            "[[partner]]\nid = \"carrier\"\nformat = \"easypost\"\n[partner.signature]\nscheme = \"basic\"\nsecrets = [\"carrier:p4ss\"]\n",
        );
        let headers = partner_headers(&carrier, b"{}", "m").unwrap();
        let url = format!("http://{addr}/webhooks/carrier");
        post(&reqwest::Client::new(), &url, &headers, b"{}".to_vec())
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        let (query, names) = &seen[0];
        assert_eq!(query, &None);
        assert!(names.contains(&"authorization".to_owned()), "{names:?}");
    }

    #[tokio::test]
    async fn failed_request_error_does_not_show_the_url_or_its_token() {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let headers = vec![("?token".to_owned(), "s3cr3t-token".to_owned())];
        let error = post(
            &reqwest::Client::new(),
            "http://127.0.0.1:9/webhooks/shippo",
            &headers,
            Vec::new(),
        )
        .await
        .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(!shown.contains("webhooks/shippo"), "{shown}");
    }
}
