//! What webhook ingress hands on: one accepted partner delivery, raw body kept byte for byte,
//! published on the bus as `partner.webhook.received` for the canonical transform.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// EventBridge `source` of accepted webhooks.
pub const BUS_SOURCE: &str = "freightbridge.ingress";
/// EventBridge `detail-type` of accepted webhooks.
pub const DETAIL_TYPE: &str = "partner.webhook.received";

/// Namespace of ingress ids (UUIDv5 of partner and delivery id). Never change it.
const INGRESS_ID_NAMESPACE: Uuid = Uuid::from_u128(0x0b9d_51f4_7c2a_4e61_8d0e_4f3a_9c61_25b7);

/// The id answered to the partner: the same delivery always gets the same id.
pub fn ingress_id(partner: &str, delivery_id: &str) -> Uuid {
    let name = format!("{partner}\u{1f}{delivery_id}");
    Uuid::new_v5(&INGRESS_ID_NAMESPACE, name.as_bytes())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedWebhook {
    /// The `event_id` answered to the partner.
    pub ingress_id: Uuid,
    pub partner: String,
    /// The adapter that reads this partner's bodies (`easypost`, …).
    pub format: String,
    /// Partner delivery id, or `sha256:<hex>` of the body when the partner sends none.
    pub delivery_id: String,
    pub received_at: DateTime<Utc>,
    pub content_type: Option<String>,
    pub body: WebhookBody,
}

/// The raw body: text when it is UTF-8 (the usual case), base64 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookBody {
    Text(String),
    Base64(String),
}

impl WebhookBody {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => WebhookBody::Text(text.to_owned()),
            Err(_) => WebhookBody::Base64(STANDARD.encode(bytes)),
        }
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        match self {
            WebhookBody::Text(text) => Ok(text.as_bytes().to_vec()),
            WebhookBody::Base64(b64) => STANDARD.decode(b64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_keeps_text_and_binary_exactly() {
        let text = WebhookBody::from_bytes(b"{\"a\":1}");
        assert_eq!(text, WebhookBody::Text("{\"a\":1}".into()));
        assert_eq!(text.to_bytes().unwrap(), b"{\"a\":1}");
        let binary = WebhookBody::from_bytes(&[0xff, 0x00, 0x41]);
        assert!(matches!(binary, WebhookBody::Base64(_)));
        assert_eq!(binary.to_bytes().unwrap(), vec![0xff, 0x00, 0x41]);
    }

    #[test]
    fn ingress_id_depends_on_partner_and_delivery() {
        assert_eq!(ingress_id("a", "1"), ingress_id("a", "1"));
        assert_ne!(ingress_id("a", "1"), ingress_id("b", "1"));
        assert_ne!(ingress_id("a", "1"), ingress_id("a", "2"));
    }
}
