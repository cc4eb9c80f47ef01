//! Reference data: the configured codes (accounts, journals, products, currencies, carriers,
//! users, external ids) resolved to Odoo ids once per execution environment. The first need of
//! a kind resolves every configured key of that kind in one round trip; a key Odoo does not know
//! is a permanent error naming the setting, never a guess, and is asked again next time (so a
//! fix in Odoo works without a cold start).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::error::OdooError;
use super::finance::FinanceError;
use super::finance_config::{FinanceConfig, OdooRef, split_xmlid};
use super::money::Currency;
use super::values::{record_id, records, text};
use super::{OdooCall, OdooPort};

/// The kinds of reference data, each with its model and the field that holds the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Account,
    Journal,
    Product,
    Currency,
    PartnerRef,
    User,
    Model,
    XmlId,
}

impl Kind {
    fn model_and_field(self) -> (&'static str, &'static str) {
        match self {
            Kind::Account => ("account.account", "code"),
            Kind::Journal => ("account.journal", "code"),
            Kind::Product => ("product.product", "default_code"),
            Kind::Currency => ("res.currency", "name"),
            Kind::PartnerRef => ("res.partner", "ref"),
            Kind::User => ("res.users", "login"),
            Kind::Model => ("ir.model", "model"),
            Kind::XmlId => ("ir.model.data", "name"),
        }
    }
}

#[derive(Debug)]
pub struct ReferenceData {
    /// Every key the settings name, per kind: resolved together on first need.
    configured: BTreeMap<Kind, BTreeSet<String>>,
    company_currency: String,
    ids: Mutex<HashMap<(Kind, String), i64>>,
    currencies: Mutex<HashMap<String, Currency>>,
}

impl ReferenceData {
    pub fn new(config: &FinanceConfig) -> Self {
        let mut configured: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
        let mut add = |kind: Kind, r: Option<&OdooRef>| {
            if let Some(OdooRef::Code(code)) = r {
                configured.entry(kind).or_default().insert(code.clone());
            }
        };
        add(Kind::Account, Some(&config.accrual.expense_account));
        add(Kind::Account, Some(&config.accrual.liability_account));
        add(Kind::Journal, Some(&config.journals.purchase));
        add(Kind::Journal, Some(&config.journals.accrual));
        add(Kind::Journal, config.landed_costs.journal.as_ref());
        add(Kind::Product, config.landed_costs.product.as_ref());
        for charge in config.charges.values() {
            add(Kind::Account, Some(&charge.account));
            add(Kind::Product, charge.product.as_ref());
        }
        let mut add_text = |kind: Kind, key: Option<&String>| {
            if let Some(key) = key {
                configured.entry(kind).or_default().insert(key.clone());
            }
        };
        add_text(Kind::Currency, Some(&config.company.currency));
        add_text(Kind::User, config.bills.ap_user.as_ref());
        add_text(Kind::XmlId, config.bills.dispute_activity_type.as_ref());
        for partner in config.carriers.values() {
            add_text(Kind::PartnerRef, partner.reference.as_ref());
            add_text(Kind::XmlId, partner.xmlid.as_ref());
        }
        Self {
            configured,
            company_currency: config.company.currency.clone(),
            ids: Mutex::new(HashMap::new()),
            currencies: Mutex::new(HashMap::new()),
        }
    }

    /// The company's currency as Odoo keeps it (id and decimals).
    pub async fn company_currency(&self, odoo: &impl OdooPort) -> Result<Currency, FinanceError> {
        let code = self.company_currency.clone();
        self.currency(odoo, &code, "company.currency").await
    }

    /// A currency by ISO code; `setting` says where the code came from, for the error.
    pub async fn currency(
        &self,
        odoo: &impl OdooPort,
        code: &str,
        setting: &str,
    ) -> Result<Currency, FinanceError> {
        if let Some(currency) = lock(&self.currencies).get(code) {
            return Ok(currency.clone());
        }
        let wanted = self.wanted(Kind::Currency, code);
        let call = OdooCall::new("res.currency", "search_read")
            .with_arg("domain", json!([["name", "in", wanted]]))
            .with_arg("fields", json!(["name", "decimal_places"]))
            .assuming(Value::Array(
                wanted
                    .iter()
                    .map(|c| json!({"id": 0, "name": c, "decimal_places": 2}))
                    .collect(),
            ));
        let found = records(odoo.execute(&call).await?)?;
        {
            let mut cache = lock(&self.currencies);
            for record in &found {
                let (Some(id), Some(name)) = (record_id(record), text(record.get("name"))) else {
                    continue;
                };
                let decimal_places = record
                    .get("decimal_places")
                    .and_then(Value::as_u64)
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| OdooError::protocol("res.currency without decimal_places"))?;
                cache.insert(
                    name.to_owned(),
                    Currency {
                        id,
                        code: name.to_owned(),
                        decimal_places,
                    },
                );
            }
        }
        lock(&self.currencies).get(code).cloned().ok_or_else(|| {
            FinanceError::missing(
                setting,
                format!("no active res.currency named {code} in Odoo (is it activated?)"),
            )
        })
    }

    /// An account, journal or product named in the settings at `setting`.
    pub async fn record(
        &self,
        odoo: &impl OdooPort,
        kind: Kind,
        reference: &OdooRef,
        setting: &str,
    ) -> Result<i64, FinanceError> {
        match reference {
            OdooRef::Id(id) => Ok(*id),
            OdooRef::Code(code) => self.resolve(odoo, kind, code, setting).await,
        }
    }

    /// A code of `kind` (account code, partner reference, login, model name, external id).
    pub async fn resolve(
        &self,
        odoo: &impl OdooPort,
        kind: Kind,
        key: &str,
        setting: &str,
    ) -> Result<i64, FinanceError> {
        if let Some(id) = lock(&self.ids).get(&(kind, key.to_owned())) {
            return Ok(*id);
        }
        let wanted = self.wanted(kind, key);
        let found = match kind {
            Kind::XmlId => lookup_xmlids(odoo, &wanted).await?,
            _ => lookup_codes(odoo, kind, &wanted).await?,
        };
        let mut by_key: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for (code, id) in found {
            by_key.entry(code).or_default().insert(id);
        }
        let (model, field) = kind.model_and_field();
        {
            let mut cache = lock(&self.ids);
            for (code, ids) in &by_key {
                // An ambiguous code is never cached: every use reports it.
                if let [id] = ids.iter().copied().collect::<Vec<_>>()[..] {
                    cache.insert((kind, code.clone()), id);
                }
            }
        }
        let ids: Vec<i64> = by_key.get(key).into_iter().flatten().copied().collect();
        match ids[..] {
            [id] => Ok(id),
            [_, _, ..] => Err(FinanceError::AmbiguousMapping {
                key: setting.to_owned(),
                detail: format!(
                    "{} {model} records have {field} {key} ({ids:?}); name the record by its id",
                    ids.len()
                ),
            }),
            [] => Err(FinanceError::missing(
                setting,
                match kind {
                    Kind::XmlId => format!("no record has the external id {key} in Odoo"),
                    _ => format!("no {model} has {field} {key} in Odoo"),
                },
            )),
        }
    }

    /// The key and every other configured key of its kind not resolved yet.
    fn wanted(&self, kind: Kind, key: &str) -> Vec<String> {
        let mut wanted: BTreeSet<String> = BTreeSet::from([key.to_owned()]);
        if let Some(configured) = self.configured.get(&kind) {
            let resolved: Vec<String> = match kind {
                Kind::Currency => lock(&self.currencies).keys().cloned().collect(),
                _ => lock(&self.ids)
                    .keys()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, code)| code.clone())
                    .collect(),
            };
            wanted.extend(
                configured
                    .iter()
                    .filter(|code| !resolved.contains(code))
                    .cloned(),
            );
        }
        wanted.into_iter().collect()
    }
}

/// `search_read` on the code field: (code, id) pairs.
async fn lookup_codes(
    odoo: &impl OdooPort,
    kind: Kind,
    codes: &[String],
) -> Result<Vec<(String, i64)>, FinanceError> {
    let (model, field) = kind.model_and_field();
    let call = OdooCall::new(model, "search_read")
        .with_arg("domain", json!([[field, "in", codes]]))
        .with_arg("fields", json!([field]))
        .assuming(Value::Array(
            codes.iter().map(|c| json!({"id": 0, field: c})).collect(),
        ));
    Ok(records(odoo.execute(&call).await?)?
        .iter()
        .filter_map(|r| Some((text(r.get(field))?.to_owned(), record_id(r)?)))
        .collect())
}

/// External ids through `ir.model.data` (the lookup helpers are private over RPC, reference
/// §8.10): one `search_read` with an OR of (module, name) pairs.
async fn lookup_xmlids(
    odoo: &impl OdooPort,
    xmlids: &[String],
) -> Result<Vec<(String, i64)>, FinanceError> {
    let pairs: Vec<(&str, &str)> = xmlids.iter().filter_map(|x| split_xmlid(x)).collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut domain: Vec<Value> = Vec::new();
    for _ in 1..pairs.len() {
        domain.push(json!("|"));
    }
    for (module, name) in &pairs {
        domain.push(json!("&"));
        domain.push(json!(["module", "=", module]));
        domain.push(json!(["name", "=", name]));
    }
    let call = OdooCall::new("ir.model.data", "search_read")
        .with_arg("domain", Value::Array(domain))
        .with_arg("fields", json!(["module", "name", "model", "res_id"]))
        .assuming(Value::Array(
            pairs
                .iter()
                .map(|(m, n)| json!({"id": 0, "module": m, "name": n, "res_id": 0}))
                .collect(),
        ));
    Ok(records(odoo.execute(&call).await?)?
        .iter()
        .filter_map(|r| {
            let module = text(r.get("module"))?;
            let name = text(r.get("name"))?;
            let res_id = r.get("res_id").and_then(Value::as_i64)?;
            Some((format!("{module}.{name}"), res_id))
        })
        .collect())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use crate::failure::Classify;

    use super::*;

    /// Answers from a function of the call and records the calls.
    struct Fake<F> {
        answer: F,
        calls: StdMutex<Vec<OdooCall>>,
    }

    impl<F: Fn(&OdooCall) -> Value + Send + Sync> OdooPort for Fake<F> {
        async fn execute(&self, call: &OdooCall) -> Result<Value, OdooError> {
            self.calls.lock().unwrap().push(call.clone());
            Ok((self.answer)(call))
        }
    }

    fn fake<F: Fn(&OdooCall) -> Value + Send + Sync>(answer: F) -> Fake<F> {
        Fake {
            answer,
            calls: StdMutex::new(Vec::new()),
        }
    }

    fn config() -> FinanceConfig {
        FinanceConfig::parse(
            r#"
            [company]
            currency = "USD"
            [journals]
            purchase = "BILL"
            accrual = 3
            [accrual]
            expense_account = "600000"
            liability_account = "211100"
            [bills]
            ap_user = "ap"
            dispute_activity_type = "mail.mail_activity_data_todo"
            [carriers.OFL]
            ref = "CARRIER-OFL"
            [carriers.NLMI]
            xmlid = "freight_sync.carrier_nlmi"
            [charges.base_freight]
            account = "600000"
            product = "FREIGHT"
            "#,
        )
        .unwrap()
    }

    /// An Odoo with accounts 600000 → 32 and 211100 → 16 (transcript 040), and two partners
    /// sharing the reference DUP.
    fn accounts(call: &OdooCall) -> Value {
        let codes = call.kwargs["domain"][0][2].as_array().unwrap().clone();
        let table = [("600000", 32), ("211100", 16), ("201000", 14)];
        Value::Array(
            table
                .iter()
                .filter(|(code, _)| codes.contains(&json!(code)))
                .map(|(code, id)| json!({"id": id, "code": code}))
                .collect(),
        )
    }

    #[tokio::test]
    async fn every_configured_code_of_a_kind_is_resolved_in_one_round_trip_then_cached() {
        let reference = ReferenceData::new(&config());
        let odoo = fake(accounts);
        let expense = reference
            .record(
                &odoo,
                Kind::Account,
                &OdooRef::Code("600000".into()),
                "accrual.expense_account",
            )
            .await
            .unwrap();
        assert_eq!(expense, 32);
        {
            let calls = odoo.calls.lock().unwrap();
            assert_eq!(calls.len(), 1);
            assert_eq!(
                calls[0].kwargs["domain"],
                json!([["code", "in", ["211100", "600000"]]])
            );
        }
        let liability = reference
            .record(
                &odoo,
                Kind::Account,
                &OdooRef::Code("211100".into()),
                "accrual.liability_account",
            )
            .await
            .unwrap();
        assert_eq!(liability, 16);
        // Ids from the settings need no lookup at all.
        let journal = reference
            .record(&odoo, Kind::Journal, &OdooRef::Id(3), "journals.accrual")
            .await
            .unwrap();
        assert_eq!(journal, 3);
        assert_eq!(odoo.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_code_names_its_setting_and_is_asked_again_later() {
        let reference = ReferenceData::new(&config());
        let odoo = fake(|_| json!([]));
        for _ in 0..2 {
            let error = reference
                .resolve(&odoo, Kind::Account, "999999", "charges.tax.account")
                .await
                .unwrap_err();
            assert_eq!(error.code(), "missing_mapping");
            assert_eq!(
                error.to_string(),
                "missing mapping charges.tax.account: no account.account has code 999999 in Odoo"
            );
        }
        assert_eq!(odoo.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_code_held_by_several_records_is_ambiguous() {
        let reference = ReferenceData::new(&config());
        let odoo =
            fake(|_| json!([{"id": 6, "ref": "CARRIER-OFL"}, {"id": 9, "ref": "CARRIER-OFL"}]));
        let error = reference
            .resolve(&odoo, Kind::PartnerRef, "CARRIER-OFL", "carriers.OFL")
            .await
            .unwrap_err();
        assert_eq!(error.code(), "ambiguous_mapping");
        assert!(error.to_string().contains("[6, 9]"), "{error}");
    }

    #[tokio::test]
    async fn external_ids_are_looked_up_together_in_ir_model_data() {
        let reference = ReferenceData::new(&config());
        let odoo = fake(|_| {
            json!([
                {"id": 1, "module": "freight_sync", "name": "carrier_nlmi", "model": "res.partner", "res_id": 12},
                {"id": 2, "module": "mail", "name": "mail_activity_data_todo", "model": "mail.activity.type", "res_id": 4},
            ])
        });
        let partner = reference
            .resolve(
                &odoo,
                Kind::XmlId,
                "freight_sync.carrier_nlmi",
                "carriers.NLMI",
            )
            .await
            .unwrap();
        assert_eq!(partner, 12);
        let todo = reference
            .resolve(
                &odoo,
                Kind::XmlId,
                "mail.mail_activity_data_todo",
                "bills.dispute_activity_type",
            )
            .await
            .unwrap();
        assert_eq!(todo, 4);
        let calls = odoo.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].kwargs["domain"],
            json!([
                "|",
                "&",
                ["module", "=", "freight_sync"],
                ["name", "=", "carrier_nlmi"],
                "&",
                ["module", "=", "mail"],
                ["name", "=", "mail_activity_data_todo"],
            ])
        );
    }

    #[tokio::test]
    async fn currencies_carry_their_precision() {
        let reference = ReferenceData::new(&config());
        let odoo = fake(
            |_| json!([{"id": 1, "name": "USD", "decimal_places": 2}, {"id": 25, "name": "JPY", "decimal_places": 0}]),
        );
        let usd = reference.company_currency(&odoo).await.unwrap();
        assert_eq!((usd.id, usd.decimal_places), (1, 2));
        let jpy = reference
            .currency(&odoo, "JPY", "invoice currency")
            .await
            .unwrap();
        assert_eq!(jpy.decimal_places, 0);
        assert_eq!(
            odoo.calls.lock().unwrap().len(),
            1,
            "what Odoo returned is cached"
        );
        let error = reference
            .currency(&odoo, "EUR", "invoice currency")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("activated"));
    }
}
