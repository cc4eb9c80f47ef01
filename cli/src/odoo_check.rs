//! `freightctl odoo check`, the onboarding check. It connects to Odoo the way the poster does,
//! asks Odoo whether the user may do what the poster does, and resolves every record the finance
//! settings name. A new user then learns what is missing before the first event fails on the
//! DLQ. With `create_missing` it also creates the plain reference records (carrier vendors and
//! service products). It never creates accounts, journals, currencies or users.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use freightbridge::odoo::finance_config::{FinanceConfig, OdooRef, PartnerRef, split_xmlid};
use freightbridge::odoo::reference::{Kind, ReferenceData};
use freightbridge::odoo::values::{many2one_id, record_id, records, single_id, text};
use freightbridge::odoo::{
    FinanceError, OdooCall, OdooClient, OdooConfig, OdooError, OdooErrorKind, OdooPort,
    ServerVersion, Transport,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use thiserror::Error;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Status {
    #[serde(rename = "ok")]
    Ok,
    /// Works, but something deserves a look (deprecated transport, standard costing, …).
    #[serde(rename = "WARN")]
    Warn,
    /// A record the settings name is not in Odoo.
    #[serde(rename = "MISSING")]
    Missing,
    /// Odoo refused, answered something unusable, or holds the wrong kind of record.
    #[serde(rename = "FAIL")]
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Missing => "MISSING",
            Status::Fail => "FAIL",
        }
    }

    /// Whether the poster would fail on it (the check's exit code is non-zero).
    pub fn blocks(self) -> bool {
        matches!(self, Status::Missing | Status::Fail)
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// What was checked, e.g. `vendor ref CARRIER-OFL (carriers.OFL)`.
    pub what: String,
    pub status: Status,
    pub detail: String,
    /// How to fix it, when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckRow {
    /// `detail` is kept on one line (Odoo's messages list groups on lines of their own).
    fn new(what: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            status,
            detail: one_line(&detail.into()),
            fix: None,
        }
    }

    fn ok(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(what, Status::Ok, detail)
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// A record `create_missing` created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub model: &'static str,
    pub id: i64,
    /// The setting(s) it was created for.
    pub setting: String,
}

/// Where the check ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    pub url: String,
    /// The server's version name, e.g. `19.0+e-20251227`.
    pub server_version: Option<String>,
    /// Why the version is unknown.
    pub version_error: Option<String>,
    pub transport: Option<Transport>,
}

impl ServerInfo {
    /// Asks the server's version routes, as the client does when it picks a transport
    /// (`freightbridge::odoo::server_version`).
    pub async fn fetch(cfg: &OdooConfig, transport: Option<Transport>) -> Self {
        let mut info = ServerInfo {
            url: cfg.url.clone(),
            transport,
            ..ServerInfo::default()
        };
        match freightbridge::odoo::server_version(cfg).await {
            Ok(Some(ServerVersion {
                version: Some(version),
                ..
            })) => info.server_version = Some(version),
            Ok(_) => {
                info.version_error = Some(
                    "neither /web/version nor /web/webclient/version_info named a version".into(),
                );
            }
            Err(error) => info.version_error = Some(format!("cannot reach {}: {error}", cfg.url)),
        }
        info
    }

    /// The major version (`19` of `19.0+e-20251227`, `18` of `saas~18.3`).
    pub fn major(&self) -> Option<u32> {
        let version = self.server_version.as_deref()?.trim_start_matches("saas~");
        let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
}

fn transport_name(transport: Option<Transport>) -> &'static str {
    match transport {
        Some(Transport::Json2) => "JSON-2",
        Some(Transport::JsonRpc) => "JSON-RPC",
        None => "no transport (dry run)",
    }
}

/// Widest CHECK column of the table; a longer name gets a line of its own.
const MAX_CHECK_WIDTH: usize = 64;

/// Everything the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub server: ServerInfo,
    /// The Odoo method that answered the access questions (see [`AccessMethod`]).
    pub access_method: Option<AccessMethod>,
    pub rows: Vec<CheckRow>,
    pub created: Vec<Created>,
}

impl CheckReport {
    /// No row would make the poster fail (only ok and WARN).
    pub fn passed(&self) -> bool {
        !self.rows.iter().any(|r| r.status.blocks())
    }

    /// The process exit code: 0 when passed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.passed() { 0 } else { 1 }
    }

    /// The row whose `what` is exactly `what`.
    pub fn row(&self, what: &str) -> Option<&CheckRow> {
        self.rows.iter().find(|r| r.what == what)
    }

    /// The rows with this status.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &CheckRow> {
        self.rows.iter().filter(move |r| r.status == status)
    }

    /// The report as the `--json` output.
    pub fn to_json(&self) -> Value {
        json!({
            "url": self.server.url,
            "server_version": self.server.server_version,
            "transport": self.server.transport.map(|t| transport_name(Some(t))),
            "access_method": self.access_method.map(AccessMethod::as_str),
            "passed": self.passed(),
            "rows": self.rows,
            "created": self.created,
        })
    }

    /// The report as a table: one line per check, the fix on the line below, a summary last.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.what.chars().count())
            .filter(|w| *w <= MAX_CHECK_WIDTH)
            .chain(["CHECK".len()])
            .max()
            .unwrap_or(0);
        let status_width = "MISSING".len();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:width$}  {:status_width$}  DETAIL",
            "CHECK", "STATUS"
        );
        for row in &self.rows {
            // A long name (an account many settings share) gets a line of its own.
            let what = if row.what.chars().count() > width {
                let _ = writeln!(out, "{}", row.what);
                ""
            } else {
                row.what.as_str()
            };
            let _ = writeln!(
                out,
                "{what:width$}  {:status_width$}  {}",
                row.status.as_str(),
                row.detail
            );
            if let Some(fix) = &row.fix {
                let _ = writeln!(out, "{:width$}  {:status_width$}  fix: {fix}", "", "");
            }
        }
        if let Some(method) = self.access_method {
            let _ = writeln!(out, "access rights asked with {}", method.describe());
        }
        let count = |s| self.with_status(s).count();
        let (missing, fail, warn) = (
            count(Status::Missing),
            count(Status::Fail),
            count(Status::Warn),
        );
        if self.passed() {
            let _ = writeln!(
                out,
                "passed: the poster has what it needs ({warn} WARN, {} created)",
                self.created.len()
            );
        } else {
            let _ = writeln!(
                out,
                "failed: {missing} MISSING, {fail} FAIL, {warn} WARN — the poster would fail until these are fixed"
            );
        }
        out
    }
}

/// Why the check could not even start.
#[derive(Debug, Error)]
pub enum CheckError {
    #[error(
        "ODOO_URL is not set: the check needs a real Odoo (ODOO_URL, ODOO_DB, ODOO_USER, ODOO_API_KEY or ODOO_PASSWORD, ODOO_TRANSPORT)"
    )]
    NoOdoo,
    #[error("Odoo settings: {0}")]
    Odoo(#[from] OdooError),
}

/// The Odoo connection settings from the environment, read as the poster reads them
/// ([`OdooConfig::from_env`]); unlike the chain there is no dry-run fallback.
pub fn odoo_config_from_env() -> Result<OdooConfig, CheckError> {
    OdooConfig::from_env()?.ok_or(CheckError::NoOdoo)
}

/// Connects with `cfg` (transport chosen as the poster chooses it) and runs [`check`]. A
/// connection failure is a FAIL row, not an error.
pub async fn check_config(
    cfg: &OdooConfig,
    finance: &FinanceConfig,
    create_missing: bool,
) -> CheckReport {
    let odoo = match OdooClient::connect(cfg).await {
        Ok(odoo) => odoo,
        Err(error) => {
            let server = ServerInfo::fetch(cfg, cfg.transport).await;
            return CheckReport {
                rows: vec![connection_failed(&server, &error)],
                server,
                access_method: None,
                created: Vec::new(),
            };
        }
    };
    let server = ServerInfo::fetch(cfg, odoo.transport()).await;
    check(&odoo, &server, finance, create_missing).await
}

/// Runs every check of [`plan`] against `odoo`, after the connection check. `server` says what
/// `odoo` is (version and transport, see [`ServerInfo::fetch`]).
pub async fn check(
    odoo: &impl OdooPort,
    server: &ServerInfo,
    finance: &FinanceConfig,
    create_missing: bool,
) -> CheckReport {
    let mut checker = Checker {
        odoo,
        reference: ReferenceData::new(finance),
        create_missing,
        access_method: None,
        company: None,
        created: Vec::new(),
    };
    let mut rows = vec![checker.connection(server).await];
    if !rows[0].status.blocks() {
        for item in plan(finance) {
            rows.push(checker.run(&item).await);
        }
    }
    CheckReport {
        server: server.clone(),
        access_method: checker.access_method,
        rows,
        created: checker.created,
    }
}

// ----------------------------------------------------------------------------- the plan

/// An access right the poster needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    Create,
    Write,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Write => "write",
        }
    }
}

/// When a need applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feature {
    Always,
    /// A carrier named by `xmlid`, or `bills.dispute_activity_type`.
    ExternalIds,
    LandedCosts,
    InvoiceRelease,
}

impl Feature {
    fn enabled(self, finance: &FinanceConfig) -> bool {
        match self {
            Feature::Always => true,
            // The dispute activity type's external id is resolved by Odoo itself
            // (`activity_schedule`); only carriers configured by xmlid are looked up.
            Feature::ExternalIds => finance.carriers.values().any(|c| c.xmlid.is_some()),
            Feature::LandedCosts => finance.landed_costs.enabled,
            Feature::InvoiceRelease => finance.invoice_release.enabled,
        }
    }
}

/// The access one model needs: its operations, the feature that needs them, and the group of
/// docs/odoo.md §5 that grants them.
type AccessNeed = (&'static str, &'static [Operation], Feature, &'static str);

const INTERNAL: &str = "Internal User (base.group_user)";
const BILLING: &str = "Invoicing / Billing (account.group_account_invoice)";
const STOCK_USER: &str = "Inventory / User (stock.group_stock_user)";
const STOCK_ADMIN: &str = "Inventory / Administrator (stock.group_stock_manager)";
/// In 18 and 19 `base.group_user` has no access at all to `ir.model.data` (nor `ir.model`;
/// `base/security/ir.model.access.csv`, `0,0,0,0`): only this group may read them.
const ACCESS_RIGHTS: &str = "Administration / Access Rights (base.group_erp_manager)";
const SALES: &str = "Sales / User: All Documents (sales_team.group_sale_salesman_all_leads)";

/// Every model and operation of the poster's `OdooCall`s in `shared/src/odoo/`: `search_read`
/// and `read` need read, `create` create, `write` and the buttons (`action_post`,
/// `compute_landed_cost`, `button_validate`) write. `stock.picking.message_post` needs write:
/// `mail.thread` posts with `_mail_post_access = 'write'` unless a model lowers it, and pickings
/// do not (`account.move` does, to read). `ir.model.data` is read to resolve carriers configured
/// by external id; disputes need neither it nor `ir.model` (`account.move.activity_schedule`).
#[rustfmt::skip]
const ACCESS: &[AccessNeed] = {
    use Feature::{Always, ExternalIds, InvoiceRelease, LandedCosts};
    use Operation::{Create, Read, Write};
    &[
        ("account.move",          &[Read, Create, Write], Always,         BILLING),
        ("account.move.line",     &[Read],                Always,         BILLING),
        ("account.move.reversal", &[Create],              Always,         BILLING),
        ("account.account",       &[Read],                Always,         BILLING),
        ("account.journal",       &[Read],                Always,         BILLING),
        ("res.currency",          &[Read],                Always,         INTERNAL),
        ("res.partner",           &[Read],                Always,         INTERNAL),
        ("product.product",       &[Read],                Always,         INTERNAL),
        ("res.users",             &[Read],                Always,         INTERNAL),
        ("ir.model.data",         &[Read],                ExternalIds,    ACCESS_RIGHTS),
        ("mail.message",          &[Read],                Always,         INTERNAL),
        ("mail.activity",         &[Read, Create],        Always,         INTERNAL),
        ("stock.picking",         &[Read, Write],         Always,         STOCK_USER),
        ("sale.order",            &[Read],                InvoiceRelease, SALES),
        ("stock.landed.cost",     &[Read, Create, Write], LandedCosts,    STOCK_ADMIN),
    ]
};

/// The access rights of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCheck {
    pub model: &'static str,
    pub operations: Vec<Operation>,
    /// False when only a disabled feature needs the model: a refusal is then a WARN.
    pub required: bool,
    pub group: &'static str,
}

/// What an account is used for, to warn about an account of the wrong type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccountRole {
    Expense,
    Liability,
}

/// One check after the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Access(AccessCheck),
    Currency {
        code: String,
    },
    Journal {
        setting: &'static str,
        reference: OdooRef,
        journal_type: &'static str,
    },
    /// An account, once for every setting that names it.
    Account {
        reference: OdooRef,
        settings: Vec<String>,
        roles: BTreeSet<AccountRole>,
    },
    /// A vendor, once for every carrier that names it.
    Vendor {
        carriers: Vec<String>,
        partner: PartnerRef,
    },
    /// A product, once for every setting that names it.
    Product {
        reference: OdooRef,
        settings: Vec<String>,
        landed_cost: bool,
    },
    Taxes {
        ids: Vec<i64>,
        settings: Vec<String>,
    },
    ApUser {
        login: Option<String>,
    },
    ActivityType {
        xmlid: Option<String>,
    },
    /// Landed costs validate only on goods costed FIFO or AVCO.
    Costing,
}

/// The checks `finance` calls for, in report order. Records named by several settings are
/// checked (and created) once.
pub fn plan(finance: &FinanceConfig) -> Vec<Check> {
    let mut checks: Vec<Check> = ACCESS
        .iter()
        .map(|(model, operations, feature, group)| {
            Check::Access(AccessCheck {
                model,
                operations: operations.to_vec(),
                required: feature.enabled(finance),
                group,
            })
        })
        .collect();
    checks.push(Check::Currency {
        code: finance.company.currency.clone(),
    });
    checks.push(Check::Journal {
        setting: "journals.purchase",
        reference: finance.journals.purchase.clone(),
        journal_type: "purchase",
    });
    checks.push(Check::Journal {
        setting: "journals.accrual",
        reference: finance.journals.accrual.clone(),
        journal_type: "general",
    });
    let landed = &finance.landed_costs;
    if landed.enabled
        && let Some(journal) = &landed.journal
    {
        checks.push(Check::Journal {
            setting: "landed_costs.journal",
            reference: journal.clone(),
            journal_type: "general",
        });
    }

    let mut accounts: Vec<(OdooRef, Vec<String>, BTreeSet<AccountRole>)> = Vec::new();
    let mut add_account = |reference: &OdooRef, setting: String, role: AccountRole| match accounts
        .iter_mut()
        .find(|(r, _, _)| r == reference)
    {
        Some((_, settings, roles)) => {
            settings.push(setting);
            roles.insert(role);
        }
        None => accounts.push((reference.clone(), vec![setting], BTreeSet::from([role]))),
    };
    add_account(
        &finance.accrual.expense_account,
        "accrual.expense_account".into(),
        AccountRole::Expense,
    );
    add_account(
        &finance.accrual.liability_account,
        "accrual.liability_account".into(),
        AccountRole::Liability,
    );
    for (kind, charge) in &finance.charges {
        add_account(
            &charge.account,
            format!("charges.{}.account", kind.as_str()),
            AccountRole::Expense,
        );
    }
    checks.extend(
        accounts
            .into_iter()
            .map(|(reference, settings, roles)| Check::Account {
                reference,
                settings,
                roles,
            }),
    );

    let mut vendors: Vec<(PartnerRef, Vec<String>)> = Vec::new();
    for (carrier, partner) in &finance.carriers {
        match vendors.iter_mut().find(|(p, _)| p == partner) {
            Some((_, carriers)) => carriers.push(carrier.clone()),
            None => vendors.push((partner.clone(), vec![carrier.clone()])),
        }
    }
    checks.extend(
        vendors
            .into_iter()
            .map(|(partner, carriers)| Check::Vendor { carriers, partner }),
    );

    let mut products: Vec<(OdooRef, Vec<String>, bool)> = Vec::new();
    let mut add_product = |reference: &OdooRef, setting: String, landed_cost: bool| match products
        .iter_mut()
        .find(|(r, _, _)| r == reference)
    {
        Some((_, settings, landed)) => {
            settings.push(setting);
            *landed |= landed_cost;
        }
        None => products.push((reference.clone(), vec![setting], landed_cost)),
    };
    for (kind, charge) in &finance.charges {
        if let Some(product) = &charge.product {
            add_product(product, format!("charges.{}.product", kind.as_str()), false);
        }
    }
    if landed.enabled
        && let Some(product) = &landed.product
    {
        add_product(product, "landed_costs.product".into(), true);
    }
    checks.extend(
        products
            .into_iter()
            .map(|(reference, settings, landed_cost)| Check::Product {
                reference,
                settings,
                landed_cost,
            }),
    );

    let mut tax_ids = BTreeSet::new();
    let mut tax_settings = Vec::new();
    for (kind, charge) in &finance.charges {
        if !charge.taxes.is_empty() {
            tax_ids.extend(charge.taxes.iter().copied());
            tax_settings.push(format!("charges.{}.taxes", kind.as_str()));
        }
    }
    if !tax_ids.is_empty() {
        checks.push(Check::Taxes {
            ids: tax_ids.into_iter().collect(),
            settings: tax_settings,
        });
    }
    checks.push(Check::ApUser {
        login: finance.bills.ap_user.clone(),
    });
    checks.push(Check::ActivityType {
        xmlid: finance.bills.dispute_activity_type.clone(),
    });
    if landed.enabled {
        checks.push(Check::Costing);
    }
    checks
}

// ----------------------------------------------------------------------------- asking Odoo

/// The public method that answers "may this user do X on model M" without raising.
///
/// Both 18 and 19 have both: `has_access(operation)` (18+, not deprecated) on a recordset and
/// `check_access_rights(operation, raise_exception=False)` (`@api.model`, deprecated since 18).
/// `has_access` on the empty recordset answers for the model; JSON-2 can call it so (no `ids`),
/// but an `execute_kw` without ids gives Odoo no recordset at all (IndexError), so JSON-RPC ends
/// up on `check_access_rights`. The check tries `has_access` first and keeps what answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AccessMethod {
    #[serde(rename = "has_access")]
    HasAccess,
    #[serde(rename = "check_access_rights")]
    CheckAccessRights,
}

impl AccessMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMethod::HasAccess => "has_access",
            AccessMethod::CheckAccessRights => "check_access_rights",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            AccessMethod::HasAccess => "has_access(operation) on the empty recordset",
            AccessMethod::CheckAccessRights => {
                "check_access_rights(operation, raise_exception=False)"
            }
        }
    }

    fn call(self, model: &str, operation: Operation) -> OdooCall {
        let call = OdooCall::new(model, self.as_str()).with_arg("operation", operation.as_str());
        match self {
            AccessMethod::HasAccess => call,
            AccessMethod::CheckAccessRights => call.with_arg("raise_exception", false),
        }
        .assuming(json!(true))
    }
}

/// The user's company, from the connection check.
#[derive(Debug, Clone)]
struct Company {
    id: i64,
    name: String,
    currency: Option<String>,
}

struct Checker<'a, P> {
    odoo: &'a P,
    /// The poster's own resolver: the check finds records exactly as the poster will.
    reference: ReferenceData,
    create_missing: bool,
    access_method: Option<AccessMethod>,
    company: Option<Company>,
    created: Vec<Created>,
}

impl<P: OdooPort> Checker<'_, P> {
    async fn run(&mut self, check: &Check) -> CheckRow {
        match check {
            Check::Access(access) => self.access(access).await,
            Check::Currency { code } => self.currency(code).await,
            Check::Journal {
                setting,
                reference,
                journal_type,
            } => self.journal(setting, reference, journal_type).await,
            Check::Account {
                reference,
                settings,
                roles,
            } => self.account(reference, settings, roles).await,
            Check::Vendor { carriers, partner } => self.vendor(carriers, partner).await,
            Check::Product {
                reference,
                settings,
                landed_cost,
            } => self.product(reference, settings, *landed_cost).await,
            Check::Taxes { ids, settings } => self.taxes(ids, settings).await,
            Check::ApUser { login } => self.ap_user(login.as_deref()).await,
            Check::ActivityType { xmlid } => self.activity_type(xmlid.as_deref()).await,
            Check::Costing => self.costing().await,
        }
    }

    /// Who we are, in which company: `context_get` (the uid, on both transports), then the
    /// user and its company.
    async fn connection(&mut self, server: &ServerInfo) -> CheckRow {
        let result = async {
            let context = self
                .odoo
                .execute(&OdooCall::new("res.users", "context_get").assuming(json!({"uid": 0})))
                .await?;
            let uid = context
                .get("uid")
                .and_then(Value::as_i64)
                .ok_or_else(|| protocol("res.users.context_get gave no uid"))?;
            let user = self
                .read_one("res.users", uid, &["login", "name", "company_id"])
                .await?
                .ok_or_else(|| protocol("the logged-in user cannot read itself"))?;
            let login = text(user.get("login")).unwrap_or("?").to_owned();
            let company = match many2one_id(user.get("company_id")) {
                Some(id) => self
                    .read_one("res.company", id, &["name", "currency_id"])
                    .await?
                    .map(|c| Company {
                        id,
                        name: text(c.get("name")).unwrap_or("?").to_owned(),
                        currency: many2one_name(c.get("currency_id")),
                    }),
                None => None,
            };
            Ok::<_, OdooError>((uid, login, company))
        }
        .await;
        let (uid, login, company) = match result {
            Ok(found) => found,
            Err(error) => return connection_failed(server, &error),
        };
        let version = server
            .server_version
            .as_deref()
            .unwrap_or("(version unknown)");
        let mut detail = format!(
            "Odoo {version} over {}, user {login} (uid {uid})",
            transport_name(server.transport)
        );
        if let Some(company) = &company {
            let _ = write!(
                detail,
                ", company {} ({})",
                company.name,
                company.currency.as_deref().unwrap_or("no currency")
            );
        }
        self.company = company;
        let row = CheckRow::ok("connection", detail);
        if let Some(error) = &server.version_error {
            return CheckRow {
                status: Status::Warn,
                detail: format!("{}; version unknown: {error}", row.detail),
                ..row
            };
        }
        if server.transport == Some(Transport::JsonRpc) && server.major().is_some_and(|v| v >= 19) {
            return CheckRow {
                status: Status::Warn,
                ..row
            }
            .fix(
                "JSON-RPC is deprecated since Odoo 19 (removal planned for 22): give the user an API key (ODOO_API_KEY) and let ODOO_TRANSPORT=auto pick JSON-2",
            );
        }
        row
    }

    async fn allowed(&mut self, model: &str, operation: Operation) -> Result<bool, OdooError> {
        let odoo = self.odoo;
        let ask = |method: AccessMethod| async move {
            let answer = odoo.execute(&method.call(model, operation)).await?;
            answer.as_bool().ok_or_else(|| {
                protocol(&format!(
                    "{model}.{} answered {answer} instead of true or false",
                    method.as_str()
                ))
            })
        };
        if let Some(method) = self.access_method {
            return ask(method).await;
        }
        let first = ask(AccessMethod::HasAccess).await;
        match first {
            Ok(allowed) => {
                self.access_method = Some(AccessMethod::HasAccess);
                Ok(allowed)
            }
            Err(error) if !cannot_ask(&error) => {
                let allowed = ask(AccessMethod::CheckAccessRights).await?;
                self.access_method = Some(AccessMethod::CheckAccessRights);
                Ok(allowed)
            }
            Err(error) => Err(error),
        }
    }

    async fn access(&mut self, access: &AccessCheck) -> CheckRow {
        let what = format!("access {}", access.model);
        let mut granted = Vec::new();
        let mut denied = Vec::new();
        for &operation in &access.operations {
            match self.allowed(access.model, operation).await {
                Ok(true) => granted.push(operation.as_str()),
                Ok(false) => denied.push(operation.as_str()),
                Err(error) => {
                    // An uninstalled module's model only matters once its feature is enabled.
                    let status = if access.required {
                        Status::Fail
                    } else {
                        Status::Warn
                    };
                    return CheckRow::new(
                        what,
                        status,
                        format!("cannot ask Odoo about {}: {error}", operation.as_str()),
                    )
                    .fix(format!(
                        "is the module of {} installed (docs/odoo.md §5)?",
                        access.model
                    ));
                }
            }
        }
        if denied.is_empty() {
            return CheckRow::ok(what, format!("may {}", granted.join(", ")));
        }
        let status = if access.required {
            Status::Fail
        } else {
            Status::Warn
        };
        let mut detail = format!("may not {}", denied.join(", "));
        if !granted.is_empty() {
            let _ = write!(detail, " (may {})", granted.join(", "));
        }
        if !access.required {
            detail.push_str("; needed only once the feature that uses it is enabled");
        }
        CheckRow::new(what, status, detail).fix(format!(
            "add the user to a group implying {} (docs/odoo.md §5)",
            access.group
        ))
    }

    async fn currency(&mut self, code: &str) -> CheckRow {
        let what = format!("currency {code} (company.currency)");
        let currency = match self.reference.company_currency(self.odoo).await {
            Ok(currency) => currency,
            Err(error) => {
                return lookup_failed(
                    what,
                    error,
                    format!(
                        "activate {code} in Odoo (Accounting → Configuration → Currencies) or correct company.currency"
                    ),
                );
            }
        };
        let detail = format!(
            "res.currency id {}, {} decimals",
            currency.id, currency.decimal_places
        );
        match self
            .company
            .as_ref()
            .and_then(|c| Some((c, c.currency.as_deref()?)))
        {
            Some((company, books)) if books != code => CheckRow::new(
                what,
                Status::Fail,
                format!(
                    "{detail}, but company {} (id {}) keeps its books in {books}: accruals would be booked in the wrong currency",
                    company.name, company.id
                ),
            )
            .fix(format!(
                "set company.currency = \"{books}\", or run the poster as a user of a company that keeps its books in {code}"
            )),
            Some(_) => CheckRow::ok(what, format!("{detail}, the company's currency")),
            None => CheckRow::ok(what, detail),
        }
    }

    async fn journal(&mut self, setting: &str, reference: &OdooRef, expected: &str) -> CheckRow {
        let what = format!("journal {reference} ({setting})");
        let fix_missing = format!(
            "freightctl never creates journals: create a journal of type {expected}{} in Odoo (Accounting → Configuration → Journals), or correct {setting}",
            match reference {
                OdooRef::Code(code) => format!(" with short code {code}"),
                OdooRef::Id(_) => String::new(),
            }
        );
        let id = match self
            .reference
            .record(self.odoo, Kind::Journal, reference, setting)
            .await
        {
            Ok(id) => id,
            Err(error) => return lookup_failed(what, error, fix_missing),
        };
        let journal = match self
            .read_one("account.journal", id, &["code", "name", "type"])
            .await
        {
            Ok(Some(journal)) => journal,
            Ok(None) => {
                return CheckRow::new(
                    what,
                    Status::Missing,
                    format!("no account.journal has id {id}"),
                )
                .fix(fix_missing);
            }
            Err(error) => return odoo_failed(what, &error),
        };
        let name = text(journal.get("name")).unwrap_or("?");
        let found = text(journal.get("type")).unwrap_or("?");
        if found != expected {
            return CheckRow::new(
                what,
                Status::Fail,
                format!(
                    "{name} (id {id}) is a {found} journal; {setting} must be of type {expected}"
                ),
            )
            .fix(format!("name a {expected} journal in {setting}"));
        }
        CheckRow::ok(what, format!("{name} (id {id}, type {found})"))
    }

    async fn account(
        &mut self,
        reference: &OdooRef,
        settings: &[String],
        roles: &BTreeSet<AccountRole>,
    ) -> CheckRow {
        let listed = settings.join(", ");
        let what = format!("account {reference} ({listed})");
        let fix_missing = format!(
            "freightctl never creates accounts: add {reference} to the chart of accounts (Accounting → Configuration → Chart of Accounts), or correct {listed}"
        );
        let first = settings.first().map(String::as_str).unwrap_or("account");
        let id = match self
            .reference
            .record(self.odoo, Kind::Account, reference, first)
            .await
        {
            Ok(id) => id,
            Err(error) => return lookup_failed(what, error, fix_missing),
        };
        let account = match self
            .read_one("account.account", id, &["code", "name", "account_type"])
            .await
        {
            Ok(Some(account)) => account,
            Ok(None) => {
                return CheckRow::new(
                    what,
                    Status::Missing,
                    format!("no account.account has id {id}"),
                )
                .fix(fix_missing);
            }
            Err(error) => return odoo_failed(what, &error),
        };
        let name = text(account.get("name")).unwrap_or("?");
        let account_type = text(account.get("account_type")).unwrap_or("?");
        let detail = format!("{name} (id {id}, {account_type})");
        let unexpected: Vec<&str> = roles
            .iter()
            .filter(|role| match role {
                AccountRole::Expense => !account_type.starts_with("expense"),
                AccountRole::Liability => !account_type.starts_with("liability"),
            })
            .map(|role| match role {
                AccountRole::Expense => "an expense",
                AccountRole::Liability => "a liability",
            })
            .collect();
        if unexpected.is_empty() {
            CheckRow::ok(what, detail)
        } else {
            CheckRow::new(
                what,
                Status::Warn,
                format!("{detail}: expected {} account", unexpected.join(" and ")),
            )
            .fix("check with the accountant that this is the account meant")
        }
    }

    async fn vendor(&mut self, carriers: &[String], partner: &PartnerRef) -> CheckRow {
        let listed = carriers
            .iter()
            .map(|c| format!("carriers.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let first = carriers.first().map(String::as_str).unwrap_or("carrier");
        let setting = format!("carriers.{first}");
        let (label, found) = if let Some(id) = partner.id {
            (format!("vendor id {id}"), Ok(id))
        } else if let Some(reference) = &partner.reference {
            (
                format!("vendor ref {reference}"),
                self.reference
                    .resolve(self.odoo, Kind::PartnerRef, reference, &setting)
                    .await,
            )
        } else if let Some(xmlid) = &partner.xmlid {
            (
                format!("vendor xmlid {xmlid}"),
                self.reference
                    .resolve(self.odoo, Kind::XmlId, xmlid, &setting)
                    .await,
            )
        } else {
            return CheckRow::new(
                format!("vendor ({listed})"),
                Status::Fail,
                "names no ref, xmlid or id",
            );
        };
        let what = format!("{label} ({listed})");
        let fix_missing = match (&partner.reference, &partner.xmlid) {
            (Some(reference), _) => format!(
                "run with --create-missing, or give the carrier's company contact the Internal Reference {reference} in Odoo (Contacts), or correct {listed}"
            ),
            (_, Some(_)) => format!(
                "run with --create-missing (creates the vendor and its external id), or correct {listed}"
            ),
            _ => format!("correct {listed}: no res.partner has that id"),
        };
        let id = match found {
            Ok(id) => id,
            Err(FinanceError::MissingMapping { .. })
                if self.create_missing && partner.id.is_none() =>
            {
                return self.create_vendor(what, first, &listed, partner).await;
            }
            Err(error) => return lookup_failed(what, error, fix_missing),
        };
        if let Some(xmlid) = &partner.xmlid
            && let Err(row) = self.xmlid_model(&what, xmlid, "res.partner").await
        {
            return row;
        }
        let found = self
            .read_one(
                "res.partner",
                id,
                &["name", "ref", "is_company", "supplier_rank", "active"],
            )
            .await;
        let record = match found {
            Ok(Some(record)) => record,
            Ok(None) => {
                return CheckRow::new(what, Status::Missing, format!("no res.partner has id {id}"))
                    .fix(fix_missing);
            }
            Err(error) => return odoo_failed(what, &error),
        };
        let name = text(record.get("name")).unwrap_or("?");
        let mut detail = format!("{name} (id {id})");
        if record.get("supplier_rank").and_then(Value::as_i64) == Some(0) {
            detail.push_str(", not yet marked as a vendor (Odoo marks it on its first bill)");
        }
        if record.get("active") == Some(&Value::Bool(false)) {
            return CheckRow::new(what, Status::Warn, format!("{detail}, archived"))
                .fix(format!("unarchive {name} in Odoo (Contacts)"));
        }
        CheckRow::ok(what, detail)
    }

    /// A vendor company named after the carrier: with the configured `ref`, or followed by its
    /// external id (`ir.model.data`, `noupdate`) when the carrier is configured by xmlid.
    async fn create_vendor(
        &mut self,
        what: String,
        carrier: &str,
        listed: &str,
        partner: &PartnerRef,
    ) -> CheckRow {
        let mut vals = Map::new();
        vals.insert("name".into(), json!(carrier));
        vals.insert("is_company".into(), json!(true));
        vals.insert("supplier_rank".into(), json!(1));
        if let Some(reference) = &partner.reference {
            vals.insert("ref".into(), json!(reference));
        }
        let id = match self.create("res.partner", vals, listed).await {
            Ok(id) => id,
            Err(error) => return create_failed(what, "res.partner", &error),
        };
        let mut detail = format!("created res.partner id {id} \"{carrier}\"");
        if let Some(xmlid) = &partner.xmlid {
            let Some((module, name)) = split_xmlid(xmlid) else {
                return CheckRow::new(what, Status::Fail, format!("{xmlid} is not module.name"));
            };
            let vals = json!({
                "module": module, "name": name, "model": "res.partner", "res_id": id,
                "noupdate": true,
            });
            let Value::Object(vals) = vals else {
                return CheckRow::new(what, Status::Fail, "internal: vals are not an object");
            };
            if let Err(error) = self.create("ir.model.data", vals, listed).await {
                return CheckRow::new(
                    what,
                    Status::Fail,
                    format!("{detail}, but not its external id {xmlid}: {error}"),
                )
                .fix(format!(
                    "give res.partner {id} the external id {xmlid} (Settings → Technical → External Identifiers), or set carriers.{carrier}.id = {id} instead of the xmlid"
                ));
            }
            let _ = write!(detail, " with external id {xmlid}");
        }
        // What the poster will look up next: the new record must be what it finds.
        let found = match (&partner.reference, &partner.xmlid) {
            (Some(reference), _) => {
                self.reference
                    .resolve(self.odoo, Kind::PartnerRef, reference, listed)
                    .await
            }
            (_, Some(xmlid)) => {
                self.reference
                    .resolve(self.odoo, Kind::XmlId, xmlid, listed)
                    .await
            }
            _ => Ok(id),
        };
        match found {
            Ok(found) if found == id => CheckRow::ok(what, detail),
            Ok(other) => CheckRow::new(
                what,
                Status::Fail,
                format!("{detail}, but the lookup finds res.partner {other}"),
            ),
            Err(error) => lookup_failed(what, error, format!("{detail}; check it in Odoo")),
        }
    }

    async fn product(
        &mut self,
        reference: &OdooRef,
        settings: &[String],
        landed_cost: bool,
    ) -> CheckRow {
        let listed = settings.join(", ");
        let what = format!("product {reference} ({listed})");
        let fix_missing = match reference {
            OdooRef::Code(code) => format!(
                "run with --create-missing, or create a service product with Internal Reference {code} in Odoo{}, or correct {listed}",
                if landed_cost {
                    " (tick Is a Landed Cost)"
                } else {
                    ""
                }
            ),
            OdooRef::Id(_) => format!("correct {listed}: no product.product has that id"),
        };
        let first = settings.first().map(String::as_str).unwrap_or("product");
        let found = self
            .reference
            .record(self.odoo, Kind::Product, reference, first)
            .await;
        let id = match (found, reference) {
            (Ok(id), _) => id,
            // Only a code can be missing (an id is taken as given and read below).
            (Err(FinanceError::MissingMapping { .. }), OdooRef::Code(code))
                if self.create_missing =>
            {
                return self
                    .create_product(what, code, &listed, first, landed_cost)
                    .await;
            }
            (Err(error), _) => return lookup_failed(what, error, fix_missing),
        };
        let mut fields = vec!["name", "default_code", "type"];
        if landed_cost {
            fields.push("landed_cost_ok");
        }
        let record = match self.read_one("product.product", id, &fields).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                return CheckRow::new(
                    what,
                    Status::Missing,
                    format!("no product.product has id {id}"),
                )
                .fix(fix_missing);
            }
            Err(error) if landed_cost && error.kind == OdooErrorKind::BadRequest => {
                return CheckRow::new(
                    what,
                    Status::Fail,
                    format!("cannot read landed_cost_ok: {error}"),
                )
                .fix("install the Landed Costs module (stock_landed_costs)");
            }
            Err(error) => return odoo_failed(what, &error),
        };
        let name = text(record.get("name")).unwrap_or("?");
        let product_type = text(record.get("type")).unwrap_or("?");
        let detail = format!("{name} (id {id}, type {product_type})");
        if landed_cost && record.get("landed_cost_ok") != Some(&Value::Bool(true)) {
            return CheckRow::new(
                what,
                Status::Fail,
                format!("{detail} is not a landed cost (landed_cost_ok is false)"),
            )
            .fix(format!(
                "tick Is a Landed Cost on {name} in Odoo (product form, Purchase tab), or name a landed-cost product in landed_costs.product"
            ));
        }
        if landed_cost && product_type != "service" {
            return CheckRow::new(
                what,
                Status::Warn,
                format!("{detail}: a landed-cost product is normally a service"),
            );
        }
        CheckRow::ok(what, detail)
    }

    async fn create_product(
        &mut self,
        what: String,
        code: &str,
        listed: &str,
        setting: &str,
        landed_cost: bool,
    ) -> CheckRow {
        let mut vals = Map::new();
        vals.insert("name".into(), json!(code));
        vals.insert("default_code".into(), json!(code));
        vals.insert("type".into(), json!("service"));
        vals.insert("purchase_ok".into(), json!(true));
        if landed_cost {
            vals.insert("landed_cost_ok".into(), json!(true));
        }
        let id = match self.create("product.product", vals, listed).await {
            Ok(id) => id,
            Err(error) => return create_failed(what, "product.product", &error),
        };
        let detail = format!(
            "created product.product id {id} \"{code}\" (service{})",
            if landed_cost { ", landed cost" } else { "" }
        );
        match self
            .reference
            .resolve(self.odoo, Kind::Product, code, setting)
            .await
        {
            Ok(found) if found == id => CheckRow::ok(what, detail),
            Ok(other) => CheckRow::new(
                what,
                Status::Fail,
                format!("{detail}, but the lookup finds product.product {other}"),
            ),
            Err(error) => lookup_failed(what, error, format!("{detail}; check it in Odoo")),
        }
    }

    async fn taxes(&mut self, ids: &[i64], settings: &[String]) -> CheckRow {
        let listed = settings.join(", ");
        let what = format!(
            "taxes {} ({listed})",
            ids.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let call = OdooCall::new("account.tax", "read")
            .with_ids(ids.iter().copied())
            .with_arg("fields", json!(["name", "type_tax_use"]))
            .assuming(json!([]));
        let found = match self.odoo.execute(&call).await.and_then(records) {
            Ok(found) => found,
            Err(error) => return odoo_failed(what, &error),
        };
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !found.iter().any(|r| record_id(r) == Some(**id)))
            .map(i64::to_string)
            .collect();
        if !missing.is_empty() {
            return CheckRow::new(
                what,
                Status::Missing,
                format!("no account.tax has id {}", missing.join(", ")),
            )
            .fix(format!(
                "correct {listed}: account.tax ids, or [] for no tax"
            ));
        }
        let names: Vec<String> = found
            .iter()
            .map(|r| {
                format!(
                    "{} ({})",
                    text(r.get("name")).unwrap_or("?"),
                    text(r.get("type_tax_use")).unwrap_or("?")
                )
            })
            .collect();
        let not_purchase = found
            .iter()
            .any(|r| text(r.get("type_tax_use")) != Some("purchase"));
        if not_purchase {
            CheckRow::new(
                what,
                Status::Warn,
                format!("{}: not all are purchase taxes", names.join(", ")),
            )
        } else {
            CheckRow::ok(what, names.join(", "))
        }
    }

    async fn ap_user(&mut self, login: Option<&str>) -> CheckRow {
        let Some(login) = login else {
            return CheckRow::new(
                "user (bills.ap_user)",
                Status::Missing,
                "not set: disputed invoices fail with missing_mapping",
            )
            .fix("set bills.ap_user to the login of the accounts-payable user");
        };
        let what = format!("user {login} (bills.ap_user)");
        match self
            .reference
            .resolve(self.odoo, Kind::User, login, "bills.ap_user")
            .await
        {
            Ok(id) => CheckRow::ok(what, format!("res.users id {id}")),
            Err(error) => lookup_failed(
                what,
                error,
                "freightctl never creates users: correct bills.ap_user to an active user's login",
            ),
        }
    }

    async fn activity_type(&mut self, xmlid: Option<&str>) -> CheckRow {
        let Some(xmlid) = xmlid else {
            return CheckRow::ok(
                "activity type (bills.dispute_activity_type)",
                "not set: Odoo's default activity type",
            );
        };
        let what = format!("activity type {xmlid} (bills.dispute_activity_type)");
        match self
            .reference
            .resolve(self.odoo, Kind::XmlId, xmlid, "bills.dispute_activity_type")
            .await
        {
            Ok(id) => match self.xmlid_model(&what, xmlid, "mail.activity.type").await {
                Ok(()) => CheckRow::ok(what, format!("mail.activity.type id {id}")),
                Err(row) => row,
            },
            // The poster does not read it (Odoo resolves it in `activity_schedule`): a user who
            // may not read external ids cannot verify it, which is no reason to fail.
            Err(FinanceError::Odoo(error)) if error.kind == OdooErrorKind::Forbidden => {
                odoo_warned(&what, &error)
            }
            Err(error) => lookup_failed(
                what,
                error,
                "name an activity type's external id (mail.mail_activity_data_todo is Odoo's To-Do), or leave it unset",
            ),
        }
    }

    /// Costing methods Odoo applies to received goods: the company default (19 has one) and
    /// each category's. Landed costs validate only on FIFO or AVCO goods.
    async fn costing(&mut self) -> CheckRow {
        let what = "costing method (landed_costs)";
        let mut methods: Vec<(String, String)> = Vec::new();
        if let Some(company) = self.company.clone() {
            // Asked, not guessed: the company-level default only exists in some versions.
            let fields = OdooCall::new("res.company", "fields_get")
                .with_arg("attributes", json!(["type"]))
                .assuming(json!({}));
            let has_default = match self.odoo.execute(&fields).await {
                Ok(fields) => fields.get("cost_method").is_some(),
                Err(error) => return odoo_warned(what, &error),
            };
            if has_default {
                match self
                    .read_one("res.company", company.id, &["cost_method"])
                    .await
                {
                    Ok(Some(record)) => {
                        if let Some(method) = text(record.get("cost_method")) {
                            methods.push(("company default".into(), method.to_owned()));
                        }
                    }
                    Ok(None) => {}
                    Err(error) => return odoo_warned(what, &error),
                }
            }
        }
        let categories = OdooCall::new("product.category", "search_read")
            .with_arg("domain", json!([]))
            .with_arg("fields", json!(["complete_name", "property_cost_method"]))
            .with_arg("order", "complete_name asc")
            .assuming(json!([]));
        match self.odoo.execute(&categories).await.and_then(records) {
            Ok(found) => methods.extend(found.iter().filter_map(|r| {
                Some((
                    format!("category {}", text(r.get("complete_name"))?),
                    text(r.get("property_cost_method"))?.to_owned(),
                ))
            })),
            Err(error) => return odoo_warned(what, &error),
        }
        let listed = methods
            .iter()
            .map(|(what, method)| format!("{what}: {method}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !methods.is_empty() && methods.iter().all(|(_, m)| m == "fifo" || m == "average") {
            return CheckRow::ok(what, listed);
        }
        CheckRow::new(
            what,
            Status::Warn,
            format!("landed costs validate only on goods costed FIFO or AVCO; {listed}"),
        )
        .fix(
            "set Costing Method First In First Out or Average Cost on the categories of the goods you receive (Inventory → Configuration → Product Categories)",
        )
    }

    /// The external id names a record of `model`.
    async fn xmlid_model(&self, what: &str, xmlid: &str, model: &str) -> Result<(), CheckRow> {
        let Some((module, name)) = split_xmlid(xmlid) else {
            return Err(CheckRow::new(
                what,
                Status::Fail,
                format!("{xmlid} is not module.name"),
            ));
        };
        let call = OdooCall::new("ir.model.data", "search_read")
            .with_arg(
                "domain",
                json!([["module", "=", module], ["name", "=", name]]),
            )
            .with_arg("fields", json!(["model"]))
            .assuming(json!([{"id": 0, "model": model}]));
        let found = self
            .odoo
            .execute(&call)
            .await
            .and_then(records)
            .map_err(|e| odoo_failed(what.to_owned(), &e))?;
        match found.first().and_then(|r| text(r.get("model"))) {
            Some(found) if found == model => Ok(()),
            Some(found) => Err(CheckRow::new(
                what,
                Status::Fail,
                format!("{xmlid} names a {found} record, not a {model}"),
            )
            .fix(format!("name the external id of a {model}"))),
            None => Err(CheckRow::new(
                what,
                Status::Missing,
                format!("no record has the external id {xmlid}"),
            )),
        }
    }

    async fn read_one(
        &self,
        model: &str,
        id: i64,
        fields: &[&str],
    ) -> Result<Option<Map<String, Value>>, OdooError> {
        let call = OdooCall::new(model, "read")
            .with_ids([id])
            .with_arg("fields", json!(fields))
            .assuming(json!([{"id": id}]));
        Ok(records(self.odoo.execute(&call).await?)?
            .into_iter()
            .find(|r| record_id(r) == Some(id)))
    }

    /// One record through the client (JSON-2 or JSON-RPC alike); its id.
    async fn create(
        &mut self,
        model: &'static str,
        vals: Map<String, Value>,
        setting: &str,
    ) -> Result<i64, OdooError> {
        let call = OdooCall::new(model, "create")
            .with_arg("vals_list", json!([vals]))
            .assuming(json!([0]));
        let answer = self.odoo.execute(&call).await?;
        let id = single_id(&answer)
            .ok_or_else(|| protocol(&format!("{model}.create answered {answer}, not one id")))?;
        tracing::info!(model, id, setting, "created by freightctl odoo check");
        self.created.push(Created {
            model,
            id,
            setting: setting.to_owned(),
        });
        Ok(id)
    }
}

/// Errors that say the server cannot be asked at all (as opposed to "this method is not here").
fn cannot_ask(error: &OdooError) -> bool {
    matches!(
        error.kind,
        OdooErrorKind::Auth
            | OdooErrorKind::Network
            | OdooErrorKind::Timeout
            | OdooErrorKind::RateLimited
    )
}

fn connection_failed(server: &ServerInfo, error: &OdooError) -> CheckRow {
    let fix = match error.kind {
        OdooErrorKind::Auth => "check ODOO_DB, ODOO_USER and ODOO_API_KEY (or ODOO_PASSWORD)",
        OdooErrorKind::Network | OdooErrorKind::Timeout => {
            "check ODOO_URL and that the server is running"
        }
        OdooErrorKind::Config => {
            "check ODOO_URL, ODOO_DB and ODOO_TRANSPORT (JSON-2 needs Odoo 19+ and an API key)"
        }
        _ => "see the error; docs/odoo.md §1 lists the settings",
    };
    CheckRow::new(
        "connection",
        Status::Fail,
        format!(
            "{} over {}: {error}",
            server.url,
            transport_name(server.transport)
        ),
    )
    .fix(fix)
}

/// A resolver error as a row: unknown is MISSING, anything else FAIL.
fn lookup_failed(what: String, error: FinanceError, fix_missing: impl Into<String>) -> CheckRow {
    match error {
        FinanceError::MissingMapping { detail, .. } => {
            CheckRow::new(what, Status::Missing, detail).fix(fix_missing)
        }
        FinanceError::AmbiguousMapping { detail, .. } => CheckRow::new(what, Status::Fail, detail)
            .fix("name the record by its id in the settings"),
        FinanceError::Odoo(error) => odoo_failed(what, &error),
        other => CheckRow::new(what, Status::Fail, other.to_string()),
    }
}

fn odoo_failed(what: String, error: &OdooError) -> CheckRow {
    let row = CheckRow::new(what, Status::Fail, error.to_string());
    match error.kind {
        OdooErrorKind::Forbidden => {
            row.fix("the user may not read this: see the access rows and docs/odoo.md §5")
        }
        _ => row,
    }
}

/// For checks that only inform: a failure to ask is a WARN.
fn odoo_warned(what: &str, error: &OdooError) -> CheckRow {
    CheckRow::new(what, Status::Warn, format!("could not check: {error}"))
}

fn create_failed(what: String, model: &str, error: &OdooError) -> CheckRow {
    CheckRow::new(what, Status::Fail, format!("could not create the {model}: {error}")).fix(
        match error.kind {
            OdooErrorKind::Forbidden => {
                "--create-missing needs a user who may create contacts and products; create it in Odoo, or run the check as an administrator"
            }
            _ => "create it in Odoo by hand",
        },
    )
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The display name of a many2one (`[1, "USD"]`).
fn many2one_name(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Array(pair) if pair.len() == 2 => pair[1].as_str().map(str::to_owned),
        _ => None,
    }
}

fn protocol(message: &str) -> OdooError {
    OdooError::new(OdooErrorKind::Protocol, message)
}

#[cfg(test)]
mod tests {
    use freightbridge::canonical::ChargeKind;

    use super::*;

    const SAMPLE: &str = include_str!("../../events/odoo.local.toml");

    fn sample() -> FinanceConfig {
        FinanceConfig::parse(SAMPLE).unwrap()
    }

    fn with_landed_costs() -> FinanceConfig {
        let mut config = sample();
        config.landed_costs.enabled = true;
        config.landed_costs.product = Some(OdooRef::Code("LANDED".into()));
        config.landed_costs.journal = Some(OdooRef::Code("STJ".into()));
        config
    }

    fn access<'a>(checks: &'a [Check], model: &str) -> &'a AccessCheck {
        checks
            .iter()
            .find_map(|c| match c {
                Check::Access(a) if a.model == model => Some(a),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn every_model_the_poster_calls_is_asked_once_with_its_operations() {
        let checks = plan(&sample());
        let moves = access(&checks, "account.move");
        assert_eq!(
            moves.operations,
            vec![Operation::Read, Operation::Create, Operation::Write]
        );
        assert!(moves.required);
        // message_post needs write on the picking (mail.thread's _mail_post_access).
        assert_eq!(
            access(&checks, "stock.picking").operations,
            vec![Operation::Read, Operation::Write]
        );
        let models: Vec<&str> = checks
            .iter()
            .filter_map(|c| match c {
                Check::Access(a) => Some(a.model),
                _ => None,
            })
            .collect();
        let unique: BTreeSet<&str> = models.iter().copied().collect();
        assert_eq!(models.len(), unique.len());
        for model in [
            "account.move.line",
            "account.move.reversal",
            "account.account",
            "account.journal",
            "res.partner",
            "product.product",
            "res.currency",
            "res.users",
            "ir.model.data",
            "mail.message",
            "mail.activity",
            "sale.order",
            "stock.landed.cost",
        ] {
            assert!(unique.contains(model), "{model}");
        }
    }

    #[test]
    fn access_for_disabled_features_is_not_required() {
        let checks = plan(&sample());
        assert!(!access(&checks, "stock.landed.cost").required);
        assert!(!access(&checks, "sale.order").required);
        let checks = plan(&with_landed_costs());
        assert!(access(&checks, "stock.landed.cost").required);
    }

    #[test]
    fn records_named_by_several_settings_are_checked_once() {
        let checks = plan(&sample());
        let products: Vec<&Check> = checks
            .iter()
            .filter(|c| matches!(c, Check::Product { .. }))
            .collect();
        assert_eq!(
            products,
            vec![&Check::Product {
                reference: OdooRef::Code("FREIGHT".into()),
                settings: vec![
                    "charges.base_freight.product".into(),
                    "charges.fuel_surcharge.product".into(),
                    "charges.accessorial.product".into(),
                    "charges.discount.product".into(),
                ],
                landed_cost: false,
            }]
        );
        let ups = checks.iter().find_map(|c| match c {
            Check::Vendor { carriers, partner }
                if partner.reference.as_deref() == Some("CARRIER-UPS") =>
            {
                Some(carriers.clone())
            }
            _ => None,
        });
        assert_eq!(ups, Some(vec!["UPS".to_owned(), "UPSN".to_owned()]));
        let expense = checks.iter().find_map(|c| match c {
            Check::Account {
                reference,
                settings,
                roles,
            } if *reference == OdooRef::Code("600000".into()) => Some((settings.len(), roles)),
            _ => None,
        });
        assert_eq!(expense, Some((7, &BTreeSet::from([AccountRole::Expense]))));
    }

    #[test]
    fn external_ids_need_ir_model_data_only_when_the_settings_use_them() {
        assert!(access(&plan(&sample()), "ir.model.data").required);
        let mut config = sample();
        config.carriers.retain(|_, c| c.xmlid.is_none());
        // The dispute activity type alone is resolved by Odoo, not by the poster.
        assert!(config.bills.dispute_activity_type.is_some());
        assert!(!access(&plan(&config), "ir.model.data").required);
        let plan = plan(&config);
        assert!(
            !plan
                .iter()
                .any(|c| matches!(c, Check::Access(a) if a.model == "ir.model"))
        );
    }

    #[test]
    fn landed_costs_add_their_product_journal_and_costing_only_when_enabled() {
        let off = plan(&sample());
        assert!(!off.contains(&Check::Costing));
        assert!(!off.iter().any(|c| matches!(
            c,
            Check::Journal {
                setting: "landed_costs.journal",
                ..
            }
        )));
        let on = plan(&with_landed_costs());
        assert!(on.contains(&Check::Costing));
        assert!(on.contains(&Check::Journal {
            setting: "landed_costs.journal",
            reference: OdooRef::Code("STJ".into()),
            journal_type: "general",
        }));
        assert!(on.contains(&Check::Product {
            reference: OdooRef::Code("LANDED".into()),
            settings: vec!["landed_costs.product".into()],
            landed_cost: true,
        }));
    }

    #[test]
    fn journals_carry_the_type_the_poster_needs() {
        let checks = plan(&sample());
        assert!(checks.contains(&Check::Journal {
            setting: "journals.purchase",
            reference: OdooRef::Code("BILL".into()),
            journal_type: "purchase",
        }));
        assert!(checks.contains(&Check::Journal {
            setting: "journals.accrual",
            reference: OdooRef::Code("MISC".into()),
            journal_type: "general",
        }));
    }

    #[test]
    fn taxes_are_checked_only_when_some_are_named() {
        assert!(
            !plan(&sample())
                .iter()
                .any(|c| matches!(c, Check::Taxes { .. }))
        );
        let mut config = sample();
        if let Some(charge) = config.charges.get_mut(&ChargeKind::FuelSurcharge) {
            charge.taxes = vec![4, 2];
        }
        assert!(plan(&config).contains(&Check::Taxes {
            ids: vec![2, 4],
            settings: vec!["charges.fuel_surcharge.taxes".into()],
        }));
    }

    fn report(statuses: &[Status]) -> CheckReport {
        CheckReport {
            server: ServerInfo {
                url: "http://odoo".into(),
                server_version: Some("19.0+e-20251227".into()),
                version_error: None,
                transport: Some(Transport::Json2),
            },
            access_method: Some(AccessMethod::HasAccess),
            rows: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| CheckRow::new(format!("check {i}"), *s, "detail"))
                .collect(),
            created: Vec::new(),
        }
    }

    #[test]
    fn only_missing_and_fail_make_the_exit_code_non_zero() {
        assert_eq!(report(&[Status::Ok, Status::Warn]).exit_code(), 0);
        assert!(report(&[]).passed());
        assert_eq!(report(&[Status::Ok, Status::Missing]).exit_code(), 1);
        assert_eq!(report(&[Status::Warn, Status::Fail]).exit_code(), 1);
    }

    #[test]
    fn the_table_aligns_columns_and_puts_the_fix_under_the_detail() {
        let mut report = report(&[Status::Ok]);
        report.rows.push(
            CheckRow::new(
                "vendor ref CARRIER-OFL (carriers.OFL)",
                Status::Missing,
                "no res.partner has ref CARRIER-OFL in Odoo",
            )
            .fix("run with --create-missing"),
        );
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        let width = "vendor ref CARRIER-OFL (carriers.OFL)".len();
        assert_eq!(lines[0], format!("{:width$}  STATUS   DETAIL", "CHECK"));
        assert_eq!(lines[1], format!("{:width$}  ok       detail", "check 0"));
        assert_eq!(
            lines[2],
            "vendor ref CARRIER-OFL (carriers.OFL)  MISSING  no res.partner has ref CARRIER-OFL in Odoo"
        );
        assert_eq!(
            lines[3],
            format!("{:width$}           fix: run with --create-missing", "")
        );
        assert!(lines[4].contains("has_access"));
        assert!(lines[5].starts_with("failed: 1 MISSING, 0 FAIL, 0 WARN"));
    }

    #[test]
    fn a_check_name_too_long_for_the_column_gets_its_own_line() {
        let mut report = report(&[Status::Ok]);
        let long = format!("account 600000 ({})", "charges.x.account, ".repeat(5));
        report.rows.push(CheckRow::ok(long.clone(), "Expenses"));
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "CHECK    STATUS   DETAIL");
        assert_eq!(lines[2], long);
        assert_eq!(lines[3], "         ok       Expenses");
    }

    #[test]
    fn json_names_statuses_as_the_table_does() {
        let mut report = report(&[Status::Missing]);
        report.rows[0].fix = Some("create it".into());
        let json = report.to_json();
        assert_eq!(json["passed"], json!(false));
        assert_eq!(json["transport"], json!("JSON-2"));
        assert_eq!(json["access_method"], json!("has_access"));
        assert_eq!(
            json["rows"][0],
            json!({"what": "check 0", "status": "MISSING", "detail": "detail", "fix": "create it"})
        );
        let ok = report_json_row(Status::Ok);
        assert!(ok.get("fix").is_none());
    }

    fn report_json_row(status: Status) -> Value {
        report(&[status]).to_json()["rows"][0].clone()
    }

    #[test]
    fn major_versions_come_from_the_server_version() {
        let info = |v: &str| ServerInfo {
            server_version: Some(v.into()),
            ..ServerInfo::default()
        };
        assert_eq!(info("19.0+e-20251227").major(), Some(19));
        assert_eq!(info("18.0").major(), Some(18));
        assert_eq!(info("saas~18.3+e").major(), Some(18));
        assert_eq!(ServerInfo::default().major(), None);
    }

    /// A small Odoo: records per model, `search_read` on equality / `in` domains, `read`,
    /// `create`, and the access answers of an 18 over JSON-RPC (no `has_access` on an empty
    /// recordset, `check_access_rights` answering).
    struct FakeOdoo {
        records: std::sync::Mutex<Vec<(String, Map<String, Value>)>>,
        denied: Vec<(&'static str, &'static str)>,
        /// Models of modules that are not installed.
        uninstalled: Vec<&'static str>,
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl FakeOdoo {
        fn new(denied: Vec<(&'static str, &'static str)>) -> Self {
            let seed = [
                (
                    "res.users",
                    json!({"id": 2, "login": "bot", "company_id": [1, "Co"]}),
                ),
                (
                    "res.company",
                    json!({"id": 1, "name": "Co", "currency_id": [1, "USD"]}),
                ),
                (
                    "res.currency",
                    json!({"id": 1, "name": "USD", "decimal_places": 2}),
                ),
                (
                    "account.journal",
                    json!({"id": 2, "code": "BILL", "name": "Bills", "type": "purchase"}),
                ),
                (
                    "account.journal",
                    json!({"id": 3, "code": "MISC", "name": "Misc", "type": "general"}),
                ),
                (
                    "account.account",
                    json!({"id": 32, "code": "600000", "name": "Expenses", "account_type": "expense"}),
                ),
                (
                    "account.account",
                    json!({"id": 16, "code": "211100", "name": "Bills to receive", "account_type": "liability_current"}),
                ),
                (
                    "ir.model.data",
                    json!({"id": 1, "module": "mail", "name": "mail_activity_data_todo", "model": "mail.activity.type", "res_id": 4}),
                ),
            ];
            let records = seed
                .into_iter()
                .map(|(model, record)| match record {
                    Value::Object(map) => (model.to_owned(), map),
                    _ => unreachable!(),
                })
                .collect();
            Self {
                records: std::sync::Mutex::new(records),
                denied,
                uninstalled: Vec::new(),
                calls: std::sync::Mutex::new(Vec::new()),
            }
        }

        fn matches(record: &Map<String, Value>, domain: &Value) -> bool {
            let terms: Vec<&Value> = domain
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t.is_array())
                .collect();
            if terms.is_empty() {
                return true;
            }
            // The resolver ORs (module, name) pairs; everything else is a plain AND.
            if terms.iter().any(|t| t[0] == "module") {
                return terms.chunks(2).any(|pair| {
                    pair.iter()
                        .all(|t| record.get(t[0].as_str().unwrap()) == Some(&t[2]))
                });
            }
            terms.iter().all(|t| {
                let value = record.get(t[0].as_str().unwrap());
                match t[1].as_str().unwrap() {
                    "in" => t[2].as_array().unwrap().iter().any(|v| Some(v) == value),
                    _ => value == Some(&t[2]),
                }
            })
        }
    }

    impl OdooPort for FakeOdoo {
        async fn execute(&self, call: &OdooCall) -> Result<Value, OdooError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}.{}", call.model, call.method));
            if self.uninstalled.contains(&call.model.as_str()) {
                return Err(OdooError::from_odoo(
                    "werkzeug.exceptions.NotFound",
                    "Object doesn't exist",
                    Some(404),
                ));
            }
            let mut records = self.records.lock().unwrap();
            let of_model =
                |records: &Vec<(String, Map<String, Value>)>| -> Vec<Map<String, Value>> {
                    records
                        .iter()
                        .filter(|(m, _)| *m == call.model)
                        .map(|(_, r)| r.clone())
                        .collect()
                };
            match call.method.as_str() {
                "context_get" => Ok(json!({"uid": 2})),
                "has_access" => Err(OdooError::from_odoo(
                    "builtins.IndexError",
                    "tuple index out of range",
                    None,
                )),
                "check_access_rights" => {
                    let operation = call.kwargs["operation"].as_str().unwrap_or("");
                    Ok(json!(
                        !self.denied.contains(&(call.model.as_str(), operation))
                    ))
                }
                "fields_get" => Ok(json!({})),
                "read" => Ok(Value::Array(
                    of_model(&records)
                        .into_iter()
                        .filter(|r| call.ids.contains(&record_id(r).unwrap_or(0)))
                        .map(Value::Object)
                        .collect(),
                )),
                "search_read" => Ok(Value::Array(
                    of_model(&records)
                        .into_iter()
                        .filter(|r| Self::matches(r, &call.kwargs["domain"]))
                        .map(Value::Object)
                        .collect(),
                )),
                "create" => {
                    let id = 100 + records.len() as i64;
                    let Some(Value::Object(vals)) = call.kwargs["vals_list"].get(0).cloned() else {
                        return Err(OdooError::new(OdooErrorKind::BadRequest, "no vals"));
                    };
                    let mut record = vals;
                    record.insert("id".into(), json!(id));
                    records.push((call.model.clone(), record));
                    Ok(json!([id]))
                }
                other => Err(OdooError::new(
                    OdooErrorKind::BadRequest,
                    format!("the fake has no {other}"),
                )),
            }
        }
    }

    fn small_config() -> FinanceConfig {
        FinanceConfig::parse(
            r#"
            [company]
            currency = "USD"
            [journals]
            purchase = "BILL"
            accrual = "MISC"
            [accrual]
            expense_account = "600000"
            liability_account = "211100"
            [bills]
            ap_user = "bot"
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

    fn server() -> ServerInfo {
        ServerInfo {
            url: "http://fake".into(),
            server_version: Some("18.0+e-20250520".into()),
            version_error: None,
            transport: Some(Transport::JsonRpc),
        }
    }

    #[tokio::test]
    async fn missing_vendors_and_products_are_reported_then_created_then_ok() {
        let odoo = FakeOdoo::new(Vec::new());
        let config = small_config();
        let first = check(&odoo, &server(), &config, false).await;
        assert!(!first.passed());
        let missing: Vec<&str> = first
            .with_status(Status::Missing)
            .map(|r| r.what.as_str())
            .collect();
        assert_eq!(
            missing,
            vec![
                "vendor xmlid freight_sync.carrier_nlmi (carriers.NLMI)",
                "vendor ref CARRIER-OFL (carriers.OFL)",
                "product FREIGHT (charges.base_freight.product)",
            ]
        );
        assert!(first.created.is_empty());

        let created = check(&odoo, &server(), &config, true).await;
        assert!(created.passed(), "{}", created.table());
        let models: Vec<&str> = created.created.iter().map(|c| c.model).collect();
        assert_eq!(
            models,
            vec![
                "res.partner",
                "ir.model.data",
                "res.partner",
                "product.product"
            ]
        );
        {
            let records = odoo.records.lock().unwrap();
            let vendor = records
                .iter()
                .find(|(m, r)| m == "res.partner" && r.get("ref") == Some(&json!("CARRIER-OFL")))
                .map(|(_, r)| r)
                .unwrap();
            assert_eq!(vendor["is_company"], json!(true));
            assert_eq!(vendor["supplier_rank"], json!(1));
            let product = records
                .iter()
                .find(|(m, _)| m == "product.product")
                .map(|(_, r)| r)
                .unwrap();
            assert_eq!(product["type"], json!("service"));
            assert_eq!(product["default_code"], json!("FREIGHT"));
            assert!(product.get("landed_cost_ok").is_none());
        }

        let again = check(&odoo, &server(), &config, true).await;
        assert!(again.passed());
        assert!(again.created.is_empty(), "nothing is created twice");
        assert_eq!(
            again
                .row("vendor ref CARRIER-OFL (carriers.OFL)")
                .map(|r| r.status),
            Some(Status::Ok)
        );
    }

    #[tokio::test]
    async fn has_access_is_tried_once_then_check_access_rights_answers() {
        let odoo = FakeOdoo::new(vec![("account.move", "write")]);
        let report = check(&odoo, &server(), &small_config(), false).await;
        assert_eq!(report.access_method, Some(AccessMethod::CheckAccessRights));
        let calls = odoo.calls.lock().unwrap();
        assert_eq!(
            calls.iter().filter(|c| c.ends_with(".has_access")).count(),
            1
        );
        let moves = report.row("access account.move").unwrap();
        assert_eq!(moves.status, Status::Fail);
        assert_eq!(moves.detail, "may not write (may read, create)");
    }

    #[tokio::test]
    async fn a_missing_module_blocks_only_when_its_feature_is_enabled() {
        let mut odoo = FakeOdoo::new(Vec::new());
        odoo.uninstalled = vec!["sale.order", "stock.landed.cost"];
        let report = check(&odoo, &server(), &small_config(), false).await;
        let sales = report.row("access sale.order").unwrap();
        assert_eq!(sales.status, Status::Warn, "{sales:?}");
        let mut config = small_config();
        config.landed_costs.enabled = true;
        config.landed_costs.product = Some(OdooRef::Code("FREIGHT".into()));
        let report = check(&odoo, &server(), &config, false).await;
        let landed = report.row("access stock.landed.cost").unwrap();
        assert_eq!(landed.status, Status::Fail, "{landed:?}");
    }

    #[tokio::test]
    async fn books_in_another_currency_fail_the_currency_check() {
        let odoo = FakeOdoo::new(Vec::new());
        odoo.records.lock().unwrap().push((
            "res.currency".into(),
            match json!({"id": 3, "name": "EUR", "decimal_places": 2}) {
                Value::Object(map) => map,
                _ => unreachable!(),
            },
        ));
        let mut config = small_config();
        config.company.currency = "EUR".into();
        let report = check(&odoo, &server(), &config, false).await;
        let row = report.row("currency EUR (company.currency)").unwrap();
        assert_eq!(row.status, Status::Fail, "{row:?}");
        assert!(row.detail.contains("keeps its books in USD"));
    }
}
