//! End to end through the local chain that `freightctl serve` runs: signed partner webhooks over
//! HTTP on 127.0.0.1 → ingress → bus → transform → bus → poster → the Odoo double, on both Odoo
//! transports. Asserts what reached Odoo, and what did not.

use std::time::Duration;

use freightbridge::config::{PartnerConfig, PartnersFile};
use freightbridge::odoo::{OdooClient, OdooConfig, Transport};
use freightbridge_tests::odoo_double::{
    InjectedFailure, OdooDouble, OdooDoubleConfig, PickingSeed,
};
use freightctl::chain::{Chain, ChainConfig};
use freightctl::send;
use serde_json::Value;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const IN_TRANSIT: &[u8] =
    include_bytes!("../../events/partners/easypost-tracker-updated-in-transit.json");
const DELIVERED: &[u8] = include_bytes!("../../events/partners/easypost-tracker-delivered.json");

struct Setup {
    /// The chain's embedded database, removed with the test.
    _state: tempfile::TempDir,
    double: OdooDouble,
    chain: Chain<OdooClient>,
    base: String,
    client: reqwest::Client,
    partner: PartnerConfig,
}

async fn setup(version: u8) -> Setup {
    let double = OdooDouble::start(OdooDoubleConfig::version(version)).await;
    let odoo_config = double.config().clone();
    let mut config = OdooConfig::new(double.url());
    config.db = Some(odoo_config.db.clone());
    config.user = Some(odoo_config.login.clone());
    config.api_key = Some(freightbridge::config::Secret::new(
        odoo_config.api_key.clone(),
    ));
    // Detected from the server: JSON-2 on 19, JSON-RPC on 18.
    let odoo = OdooClient::connect(&config).await.unwrap();
    let expected = if version >= 19 {
        Transport::Json2
    } else {
        Transport::JsonRpc
    };
    assert_eq!(odoo.transport(), Some(expected));

    let partners = PartnersFile::parse(PARTNERS).unwrap();
    let partner = partners.get("easypost").unwrap().clone();
    let state = tempfile::tempdir().unwrap();
    let mut chain_config = ChainConfig::new(partners, state.path());
    chain_config.visibility_timeout = Duration::from_millis(200);
    let chain = Chain::start(chain_config, odoo).unwrap();
    let (addr, _server) = chain.listen(0).await.unwrap();
    Setup {
        _state: state,
        double,
        chain,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        partner,
    }
}

impl Setup {
    async fn send(&self, partner: &str, body: &[u8]) -> (u16, Value) {
        let headers = send::partner_headers(&self.partner, body, "msg_e2e").unwrap();
        self.post(partner, &headers, body.to_vec()).await
    }

    async fn post(
        &self,
        partner: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let url = format!("{}/webhooks/{partner}", self.base);
        let result = send::post(&self.client, &url, headers, body).await.unwrap();
        (result.status, result.body)
    }

    async fn drained(&self) {
        assert!(
            self.chain.wait_drained(Duration::from_secs(20)).await,
            "queues did not drain"
        );
    }
}

async fn signed_webhook_posts_one_note_on_the_right_picking(version: u8) {
    let s = setup(version).await;
    let other = s
        .double
        .seed_picking(PickingSeed::new("WH/OUT/00001", Some("EZ999")));
    let picking = s
        .double
        .seed_picking(PickingSeed::new("WH/OUT/00002", Some("1")));

    let (status, first) = s.send("easypost", IN_TRANSIT).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["duplicate"], false);
    s.drained().await;
    let notes = s.double.messages_on(picking);
    assert_eq!(notes.len(), SCANS, "one note per scan of the tracker");
    let bodies: Vec<String> = notes
        .iter()
        .map(|note| note["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        bodies.iter().any(|body| body.contains("EDISON")),
        "the newest scan's note carries its location: {bodies:?}"
    );
    assert!(
        bodies
            .iter()
            .all(|body| body.contains("freightbridge event")),
        "every note carries its marker: {bodies:?}"
    );
    assert!(s.double.messages_on(other).is_empty());
    // The shipment's ledger entry names the Odoo records written for it: the picking, each note.
    let entry = freightbridge::ledger::LedgerStore::load(
        s.chain.state.as_ref(),
        &freightbridge::ledger::ledger_key("1"),
    )
    .await
    .unwrap()
    .expect("the shipment's ledger entry")
    .entry;
    let noted: Vec<(&str, i64)> = entry
        .odoo
        .iter()
        .map(|r| (r.model.as_str(), r.id))
        .collect();
    assert!(noted.contains(&("stock.picking", picking)), "{noted:?}");
    assert_eq!(
        noted
            .iter()
            .filter(|(model, _)| *model == "mail.message")
            .count(),
        SCANS,
        "{noted:?}"
    );

    // The partner retries the same delivery: 200 duplicate, same event id, no second note.
    let (status, again) = s.send("easypost", IN_TRANSIT).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);
    s.drained().await;
    assert_eq!(s.double.messages_on(picking).len(), SCANS);

    // The tracker's next update repeats the seven scans and adds one: one more note.
    let mut next: Value = serde_json::from_slice(IN_TRANSIT).unwrap();
    next["id"] = "evt_e2e_next".into();
    next["result"]["status"] = "out_for_delivery".into();
    next["result"]["tracking_details"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "status": "out_for_delivery",
            "status_detail": "out_for_delivery",
            "datetime": "2024-08-03T08:05:00Z",
            "message": "On FedEx vehicle for delivery",
            "tracking_location": {"city": "EDISON", "state": "NJ", "zip": "08817"},
        }));
    let (status, _) = s
        .send("easypost", &serde_json::to_vec(&next).unwrap())
        .await;
    assert_eq!(status, 202);
    s.drained().await;
    let notes = s.double.messages_on(picking);
    assert_eq!(notes.len(), SCANS + 1, "only the new scan was posted");
    assert!(
        notes.iter().any(|note| note["body"]
            .as_str()
            .unwrap_or_default()
            .contains("Shipment out for delivery")),
        "{notes:?}"
    );
    assert!(s.chain.odoo_dlq.is_empty().unwrap() && s.chain.transform_dlq.is_empty().unwrap());
}

/// Scans in `events/partners/easypost-tracker-updated-in-transit.json`.
const SCANS: usize = 7;

#[tokio::test]
async fn signed_webhook_posts_one_note_on_the_right_picking_json2_odoo19() {
    signed_webhook_posts_one_note_on_the_right_picking(19).await;
}

#[tokio::test]
async fn signed_webhook_posts_one_note_on_the_right_picking_jsonrpc_odoo18() {
    signed_webhook_posts_one_note_on_the_right_picking(18).await;
}

#[tokio::test]
async fn rejected_webhooks_publish_nothing() {
    let s = setup(19).await;
    let headers = send::partner_headers(&s.partner, IN_TRANSIT, "m").unwrap();

    let mut tampered = IN_TRANSIT.to_vec();
    tampered[10] ^= 1;
    let (status, body) = s.post("easypost", &headers, tampered).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );

    let (status, body) = s.post("nobody", &headers, IN_TRANSIT.to_vec()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_partner"))
    );

    let big = vec![b' '; 300 * 1024];
    let big_headers = send::partner_headers(&s.partner, &big, "m").unwrap();
    let (status, body) = s.post("easypost", &big_headers, big).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );

    let mut text = headers.clone();
    text.retain(|(name, _)| name != "content-type");
    text.push(("content-type".into(), "text/plain".into()));
    let (status, _) = s.post("easypost", &text, IN_TRANSIT.to_vec()).await;
    assert_eq!(status, 415);

    let garbage = b"{\"id\": 1".to_vec();
    let garbage_headers = send::partner_headers(&s.partner, &garbage, "m").unwrap();
    let (status, body) = s.post("easypost", &garbage_headers, garbage).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("malformed_payload"))
    );

    assert!(
        s.chain.bus.published().unwrap().is_empty(),
        "nothing was published"
    );
    assert!(s.double.calls().is_empty(), "Odoo was never called");
}

#[tokio::test]
async fn odoo_outage_is_retried_until_the_note_lands_once() {
    let s = setup(19).await;
    let picking = s
        .double
        .seed_picking(PickingSeed::new("WH/OUT/00007", Some("EZ4000000004")));
    s.double
        .fail_next_on("message_post", 2, InjectedFailure::Http503);
    let (status, _) = s.send("easypost", DELIVERED).await;
    assert_eq!(status, 202);
    s.drained().await;
    let notes = s.double.messages_on(picking);
    // Four scans, the newest the delivery; every note posted once despite the outage.
    assert_eq!(notes.len(), 4, "retried after the outage, each posted once");
    let signed: Vec<_> = notes
        .iter()
        .filter(|note| {
            note["body"]
                .as_str()
                .unwrap_or_default()
                .contains("John Tester")
        })
        .collect();
    assert_eq!(
        signed.len(),
        1,
        "proof of delivery in the delivery's note: {notes:?}"
    );
    assert!(s.chain.odoo_dlq.is_empty().unwrap());
}

#[tokio::test]
async fn event_for_an_unknown_picking_is_dead_lettered_with_its_reason() {
    let s = setup(19).await;
    let (status, _) = s.send("easypost", IN_TRANSIT).await;
    assert_eq!(status, 202);
    s.drained().await;
    let letters = s.chain.odoo_dlq.snapshot().unwrap();
    assert_eq!(letters.len(), SCANS, "each scan's event dead-lettered");
    for letter in &letters {
        let code = letter
            .attributes
            .iter()
            .find(|(k, _)| k == "fb-error-code")
            .map(|(_, v)| v.as_str());
        assert_eq!(code, Some("odoo_picking_not_found"));
    }
    // The dead letter keeps the original body, so it can be redriven once the picking exists.
    assert!(letters[0].body.contains("shipment.status_changed"));
}
