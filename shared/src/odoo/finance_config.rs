//! The poster's finance settings: which Odoo company currency, journals, accounts, products and
//! partners the accounting uses, read from a TOML file (`ODOO_FINANCE_CONFIG`). Everything is
//! named the way an accountant sees it in Odoo (account codes, journal codes, product internal
//! references, partner references or external ids) and resolved to ids at run time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::canonical::ChargeKind;

use super::finance::FinanceError;

/// The environment variable naming the finance settings file.
pub const FINANCE_CONFIG_ENV: &str = "ODOO_FINANCE_CONFIG";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinanceConfig {
    pub company: CompanySettings,
    pub journals: JournalSettings,
    pub accrual: AccrualSettings,
    #[serde(default)]
    pub bills: BillSettings,
    /// Carrier (the event's `shipment.carrier`, else its `partner`) → the vendor in Odoo.
    #[serde(default)]
    pub carriers: BTreeMap<String, PartnerRef>,
    /// Charge kind (`base_freight`, `fuel_surcharge`, …) → bill line product/account/taxes.
    #[serde(default)]
    pub charges: BTreeMap<ChargeKind, ChargeMapping>,
    #[serde(default)]
    pub landed_costs: LandedCostSettings,
    #[serde(default)]
    pub invoice_release: InvoiceReleaseSettings,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanySettings {
    /// The company's currency (ISO 4217), e.g. `USD`.
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// Vendor bills (`type = purchase`), e.g. `BILL`.
    pub purchase: OdooRef,
    /// Accruals and their reversals (`type = general`), e.g. `MISC`.
    pub accrual: OdooRef,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccrualSettings {
    /// Debited by an accrual: freight expense, e.g. `600000`.
    pub expense_account: OdooRef,
    /// Credited by an accrual: accrued freight (a current liability), e.g. `211100`.
    pub liability_account: OdooRef,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillSettings {
    /// Login of the accounts-payable user who gets disputed invoices (`res.users.login`).
    pub ap_user: Option<String>,
    /// External id of the activity type for disputes; Odoo's default type when unset.
    pub dispute_activity_type: Option<String>,
    /// Days from the dispute to the activity's deadline.
    #[serde(default = "default_dispute_days")]
    pub dispute_deadline_days: u32,
}

impl Default for BillSettings {
    fn default() -> Self {
        Self {
            ap_user: None,
            dispute_activity_type: None,
            dispute_deadline_days: default_dispute_days(),
        }
    }
}

fn default_dispute_days() -> u32 {
    3
}

/// A record named by its code (account code, journal code, product internal reference) or,
/// when codes are ambiguous (several companies), by its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(untagged)]
pub enum OdooRef {
    Id(i64),
    Code(String),
}

impl std::fmt::Display for OdooRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OdooRef::Id(id) => write!(f, "id {id}"),
            OdooRef::Code(code) => f.write_str(code),
        }
    }
}

/// How a carrier's vendor is found in Odoo: exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerRef {
    /// `res.partner.ref` (internal reference), e.g. `CARRIER-OFL`.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// External id `module.name` (`ir.model.data`), e.g. `freight_sync.carrier_ofl`.
    pub xmlid: Option<String>,
    /// The `res.partner` id itself.
    pub id: Option<i64>,
}

/// What a bill line of one charge kind books to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeMapping {
    /// The expense account, always sent so Odoo never guesses.
    pub account: OdooRef,
    /// A service product (internal reference), for reporting and landed costs.
    pub product: Option<OdooRef>,
    /// `account.tax` ids applied to the line; `[]` sends "no taxes" explicitly, so the
    /// product's default purchase taxes are not added behind our back.
    #[serde(default)]
    pub taxes: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandedCostSettings {
    #[serde(default)]
    pub enabled: bool,
    /// The landed-cost product (`landed_cost_ok`), by internal reference.
    pub product: Option<OdooRef>,
    #[serde(default)]
    pub split_method: SplitMethod,
    /// Stock journal of the landed cost; Odoo's default (Inventory Valuation) when unset.
    pub journal: Option<OdooRef>,
}

/// `stock.landed.cost.lines.split_method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    Equal,
    #[default]
    ByQuantity,
    ByCurrentCostPrice,
    ByWeight,
    ByVolume,
}

impl SplitMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitMethod::Equal => "equal",
            SplitMethod::ByQuantity => "by_quantity",
            SplitMethod::ByCurrentCostPrice => "by_current_cost_price",
            SplitMethod::ByWeight => "by_weight",
            SplitMethod::ByVolume => "by_volume",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceReleaseSettings {
    /// Post the sale order's draft customer invoices when its delivery is confirmed.
    #[serde(default)]
    pub enabled: bool,
    /// Only for deliveries reported by these partners (`event.partner`); every partner when
    /// empty.
    #[serde(default)]
    pub partners: Vec<String>,
}

impl InvoiceReleaseSettings {
    pub fn applies_to(&self, partner: &str) -> bool {
        self.enabled && (self.partners.is_empty() || self.partners.iter().any(|p| p == partner))
    }
}

impl FinanceConfig {
    /// Parses and checks a settings file's text.
    pub fn parse(text: &str) -> Result<Self, FinanceError> {
        let config: FinanceConfig =
            toml::from_str(text).map_err(|e| FinanceError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, FinanceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| FinanceError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// The file named by `ODOO_FINANCE_CONFIG`; `Ok(None)` when the variable is unset or empty
    /// (the poster then applies milestone notes only and refuses finance events).
    pub fn from_env() -> Result<Option<Self>, FinanceError> {
        match std::env::var(FINANCE_CONFIG_ENV) {
            Ok(path) if !path.trim().is_empty() => Self::load(path.trim()).map(Some),
            _ => Ok(None),
        }
    }

    fn check(&self) -> Result<(), FinanceError> {
        let currency = &self.company.currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FinanceError::Config(format!(
                "company.currency must be an ISO 4217 code such as USD, not {currency:?}"
            )));
        }
        for (carrier, partner) in &self.carriers {
            let given = [
                partner.reference.is_some(),
                partner.xmlid.is_some(),
                partner.id.is_some(),
            ]
            .into_iter()
            .filter(|g| *g)
            .count();
            if given != 1 {
                return Err(FinanceError::Config(format!(
                    "carriers.{carrier} needs exactly one of ref, xmlid or id"
                )));
            }
            if let Some(xmlid) = &partner.xmlid
                && split_xmlid(xmlid).is_none()
            {
                return Err(FinanceError::Config(format!(
                    "carriers.{carrier}.xmlid must look like module.name, not {xmlid:?}"
                )));
            }
        }
        if self.landed_costs.enabled && self.landed_costs.product.is_none() {
            return Err(FinanceError::Config(
                "landed_costs.product is required when landed costs are enabled".into(),
            ));
        }
        if let Some(xmlid) = &self.bills.dispute_activity_type
            && split_xmlid(xmlid).is_none()
        {
            return Err(FinanceError::Config(format!(
                "bills.dispute_activity_type must look like module.name, not {xmlid:?}"
            )));
        }
        Ok(())
    }
}

/// `module.name` → (`module`, `name`); the module never holds a dot, the name may.
pub fn split_xmlid(xmlid: &str) -> Option<(&str, &str)> {
    let (module, name) = xmlid.split_once('.')?;
    (!module.is_empty() && !name.is_empty()).then_some((module, name))
}

#[cfg(test)]
mod tests {
    use crate::failure::Classify;

    use super::*;

    const SAMPLE: &str = include_str!("../../../events/odoo.local.toml");

    #[test]
    fn the_local_sample_parses() {
        let config = FinanceConfig::parse(SAMPLE).unwrap();
        assert_eq!(config.company.currency, "USD");
        assert_eq!(config.journals.purchase, OdooRef::Code("BILL".into()));
        assert!(config.charges.contains_key(&ChargeKind::BaseFreight));
        assert!(!config.carriers.is_empty());
    }

    #[test]
    fn codes_and_ids_are_both_accepted() {
        let text = r#"
            [company]
            currency = "EUR"
            [journals]
            purchase = 2
            accrual = "MISC"
            [accrual]
            expense_account = "600000"
            liability_account = 16
            [carriers.UPSN]
            xmlid = "freight_sync.carrier_ups"
            [charges.fuel_surcharge]
            account = "600000"
            product = "FUEL"
            taxes = [2]
        "#;
        let config = FinanceConfig::parse(text).unwrap();
        assert_eq!(config.journals.purchase, OdooRef::Id(2));
        assert_eq!(config.accrual.liability_account, OdooRef::Id(16));
        let fuel = &config.charges[&ChargeKind::FuelSurcharge];
        assert_eq!(fuel.taxes, vec![2]);
        assert_eq!(config.bills.dispute_deadline_days, 3);
        assert_eq!(config.landed_costs.split_method, SplitMethod::ByQuantity);
        assert!(!config.invoice_release.applies_to("easypost"));
    }

    #[test]
    fn mistakes_are_configuration_errors_that_say_where() {
        let base = "[company]\ncurrency = \"USD\"\n[journals]\npurchase = \"BILL\"\naccrual = \"MISC\"\n[accrual]\nexpense_account = \"600000\"\nliability_account = \"211100\"\n";
        let cases = [
            ("[carriers.UPSN]\nref = \"A\"\nid = 3\n", "carriers.UPSN"),
            ("[carriers.UPSN]\n", "carriers.UPSN"),
            ("[carriers.UPSN]\nxmlid = \"nodot\"\n", "module.name"),
            ("[charges.teleport]\naccount = \"1\"\n", "teleport"),
            ("[landed_costs]\nenabled = true\n", "landed_costs.product"),
            ("[bills]\nap_usr = \"x\"\n", "ap_usr"),
        ];
        for (extra, needle) in cases {
            let error = FinanceConfig::parse(&format!("{base}{extra}")).unwrap_err();
            assert_eq!(error.code(), "finance_config", "{extra}");
            assert!(error.to_string().contains(needle), "{extra}: {error}");
        }
        let error = FinanceConfig::parse(&base.replace("USD", "usd")).unwrap_err();
        assert!(error.to_string().contains("ISO 4217"));
    }

    #[test]
    fn invoice_release_can_be_limited_to_some_partners() {
        let release = InvoiceReleaseSettings {
            enabled: true,
            partners: vec!["easypost".into()],
        };
        assert!(release.applies_to("easypost"));
        assert!(!release.applies_to("aftership"));
        let everyone = InvoiceReleaseSettings {
            enabled: true,
            partners: vec![],
        };
        assert!(everyone.applies_to("aftership"));
    }

    #[test]
    fn xmlids_split_at_the_first_dot() {
        assert_eq!(
            split_xmlid("mail.mail_activity_data_todo"),
            Some(("mail", "mail_activity_data_todo"))
        );
        assert_eq!(split_xmlid("a.b.c"), Some(("a", "b.c")));
        assert_eq!(split_xmlid(".x"), None);
        assert_eq!(split_xmlid("x"), None);
    }
}
