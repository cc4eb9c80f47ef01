//! Freight accruals: what a shipment is expected to cost, booked when it is estimated (debit
//! freight expense, credit accrued freight) and reversed when the carrier's invoice is matched.
//! Every accrual of a shipment has a `ref` starting with `FB-ACR/<tracking number>/`, followed by
//! the estimate's time and the event's tag; a revision books only the difference to what the
//! shipment's accruals add up to, so nothing is ever accrued twice and a stale estimate that
//! arrives late changes nothing.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::canonical::{CanonicalEvent, Estimate};

use super::bills::create_move;
use super::finance::{Finance, FinanceError, event_tag, one_line};
use super::money::{self, EntryLine};
use super::reference::Kind;
use super::values::{created_id, many2one_id, records, text};
use super::{OdooCall, OdooError, OdooPort};

/// Start of every accrual reference.
pub const REF_PREFIX: &str = "FB-ACR/";

/// The reason given to Odoo's reversal wizard; Odoo puts it in the reversal's `ref`
/// ("Reversal of: MISC/2026/11/0001, <reason>", transcript 057), which keeps the reversal
/// findable with the shipment's accruals.
const REVERSAL_MARK: &str = "REV/";

/// `FB-ACR/<tracking>/`: what every accrual (and reversal) of the shipment contains.
pub fn shipment_prefix(event: &CanonicalEvent) -> String {
    format!("{REF_PREFIX}{}/", event.shipment.tracking_number.trim())
}

/// `FB-ACR/<tracking>/<estimate time>/<tag>`: the estimate's time orders revisions.
pub fn accrual_ref(event: &CanonicalEvent) -> String {
    format!(
        "{}{}/{}",
        shipment_prefix(event),
        event.occurred_at.format("%Y%m%dT%H%M%SZ"),
        event_tag(event)
    )
}

/// What `freight_cost.estimated` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accrued {
    /// An entry for the difference was posted.
    Posted {
        move_id: i64,
        /// Positive: more accrued; negative: part of the accrual released.
        difference: Decimal,
        /// What the shipment's accruals add up to now.
        accrued: Decimal,
    },
    /// This estimate was booked by an earlier attempt (its entry is posted now).
    AlreadyApplied { move_id: i64 },
    /// The estimate equals what is accrued already.
    Unchanged { accrued: Decimal },
    /// A later estimate was booked before this one arrived.
    Stale,
    /// The shipment's invoice was matched and its accrual reversed: nothing more to accrue.
    Closed,
}

/// One journal item of the shipment's accruals on the accrued-freight account.
#[derive(Debug, Clone)]
struct AccrualItem {
    move_id: i64,
    reference: String,
    /// Debit minus credit on the liability account: negative for an accrual.
    balance: Decimal,
    /// `draft` or `posted`.
    state: String,
    /// The entry's name (`MISC/2026/11/0001`; `/` while draft).
    move_name: String,
}

impl AccrualItem {
    fn is_reversal(&self, prefix: &str) -> bool {
        !self.reference.starts_with(prefix) && self.reference.contains(prefix)
    }

    /// Whether this reversal's `ref` ("Reversal of: <name>, <reason>") names the entry `name`.
    fn reverses(&self, name: &str) -> bool {
        name != "/" && self.reference.contains(&format!(" {name}, "))
    }

    /// The estimate time part of an accrual's reference.
    fn stamp<'a>(&'a self, prefix: &str) -> Option<&'a str> {
        self.reference.strip_prefix(prefix)?.split('/').next()
    }
}

/// `freight_cost.estimated` → a posted accrual entry for the difference between the estimate and
/// what the shipment's accruals add up to. Round trips once reference data is cached: the
/// shipment's accrual items, the create and the post (3).
pub async fn accrue(
    odoo: &impl OdooPort,
    finance: &Finance,
    event: &CanonicalEvent,
    estimate: &Estimate,
) -> Result<Accrued, FinanceError> {
    let reference = finance.reference();
    let currency = reference
        .currency(odoo, &estimate.currency, "the estimate's currency")
        .await?;
    let company = reference.company_currency(odoo).await?;
    if currency.id != company.id {
        return Err(FinanceError::refused(
            "accrual_currency_not_supported",
            format!(
                "the estimate is in {} but accruals are booked in the company currency {}",
                currency.code, company.code
            ),
        ));
    }
    if estimate.total.is_sign_negative() && !estimate.total.is_zero() {
        return Err(FinanceError::refused(
            "negative_estimate",
            format!("the estimate's total is negative ({})", estimate.total),
        ));
    }
    // The estimate's own lines, when it has any, must add up to its total.
    let total = if estimate.lines.is_empty() {
        currency.round(estimate.total)
    } else {
        let amounts: Vec<Decimal> = estimate.lines.iter().map(|l| l.amount).collect();
        money::check_total(&amounts, estimate.total, &currency)?
            .into_iter()
            .sum()
    };
    let settings = &finance.config().accrual;
    let expense = reference
        .record(
            odoo,
            Kind::Account,
            &settings.expense_account,
            "accrual.expense_account",
        )
        .await?;
    let liability = reference
        .record(
            odoo,
            Kind::Account,
            &settings.liability_account,
            "accrual.liability_account",
        )
        .await?;
    let journal = finance
        .journal(odoo, &finance.config().journals.accrual, "journals.accrual")
        .await?;
    let partner = finance.carrier_partner(odoo, event).await?;

    let prefix = shipment_prefix(event);
    let own_ref = accrual_ref(event);
    let items = accrual_items(odoo, liability, &prefix).await?;
    if let Some(own) = items.iter().find(|i| i.reference == own_ref) {
        // An earlier attempt created it; it may have died before posting.
        if own.state == "draft" {
            post(odoo, &[own.move_id]).await?;
        }
        return Ok(Accrued::AlreadyApplied {
            move_id: own.move_id,
        });
    }
    if items.iter().any(|i| i.is_reversal(&prefix)) {
        tracing::info!(event_id = %event.event_id, "shipment's accrual was reversed on matching; estimate ignored");
        return Ok(Accrued::Closed);
    }
    let own_stamp = own_ref
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    if items
        .iter()
        .filter_map(|i| i.stamp(&prefix))
        .any(|stamp| stamp > own_stamp)
    {
        tracing::info!(event_id = %event.event_id, "a later estimate is booked already; this one is stale");
        return Ok(Accrued::Stale);
    }
    let accrued: Decimal = -items.iter().map(|i| i.balance).sum::<Decimal>();
    let difference = total - accrued;
    if difference.is_zero() {
        return Ok(Accrued::Unchanged { accrued });
    }

    let label = one_line(
        &format!(
            "Accrued freight {} ({} {} estimate {} {})",
            event.shipment.tracking_number.trim(),
            super::finance::carrier_key(event),
            match estimate.kind {
                crate::canonical::EstimateKind::Quote => "quote",
                crate::canonical::EstimateKind::Booking => "booking",
            },
            total,
            currency.code
        ),
        200,
    );
    let magnitude = difference.abs();
    let (expense_debit, expense_credit) = if difference.is_sign_positive() {
        (magnitude, Decimal::ZERO)
    } else {
        (Decimal::ZERO, magnitude)
    };
    let lines = [
        EntryLine {
            account_id: expense,
            label: label.clone(),
            debit: expense_debit,
            credit: expense_credit,
            partner_id: Some(partner),
        },
        EntryLine {
            account_id: liability,
            label,
            debit: expense_credit,
            credit: expense_debit,
            partner_id: Some(partner),
        },
    ];
    money::check_balanced(&lines, &currency)?;
    let mut vals = Map::new();
    vals.insert("move_type".into(), json!("entry"));
    vals.insert("ref".into(), json!(own_ref));
    vals.insert(
        "date".into(),
        json!(event.occurred_at.date_naive().to_string()),
    );
    vals.insert("journal_id".into(), json!(journal));
    vals.insert("line_ids".into(), entry_commands(&lines)?);
    let move_id = create_move(odoo, vals, "entry").await?;
    post(odoo, &[move_id]).await?;
    tracing::info!(event_id = %event.event_id, move_id, %difference, "freight accrual posted");
    Ok(Accrued::Posted {
        move_id,
        difference,
        accrued: total,
    })
}

/// What matching did to the shipment's accrual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reversal {
    /// Each accrual entry now has a posted reversal; `reversal_ids` are the ones this attempt
    /// created or posted.
    Reversed {
        accrual_ids: Vec<i64>,
        reversal_ids: Vec<i64>,
    },
    /// Every accrual had a posted reversal before (an earlier attempt, or a redelivered match).
    AlreadyReversed,
    /// The shipment has no accrual (no estimate was ever received).
    NothingAccrued,
}

/// Reverses every accrual entry of the event's shipment, once each, and leaves every reversal
/// posted. Odoo's wizard posts (and reconciles) a reversal only when it holds one journal entry
/// dated up to today; with several entries it leaves draft reversals. So each entry gets its own
/// wizard, and a reversal still draft afterwards (a later date, or an attempt that died) is
/// posted. The wizard's reason carries the shipment's prefix, which keeps the reversal findable
/// with the accruals; its `ref` ("Reversal of: <entry name>, <reason>") names the entry it
/// reverses. Round trips once reference data is cached: the shipment's items, the wizard and the
/// reversal per entry, one read of the new reversals' states, and one post of the drafts if any.
pub async fn reverse_for_shipment(
    odoo: &impl OdooPort,
    finance: &Finance,
    event: &CanonicalEvent,
    date: NaiveDate,
) -> Result<Reversal, FinanceError> {
    let reference = finance.reference();
    let liability = reference
        .record(
            odoo,
            Kind::Account,
            &finance.config().accrual.liability_account,
            "accrual.liability_account",
        )
        .await?;
    let journal = finance
        .journal(odoo, &finance.config().journals.accrual, "journals.accrual")
        .await?;
    let prefix = shipment_prefix(event);
    let items = accrual_items(odoo, liability, &prefix).await?;
    let mut accruals: Vec<&AccrualItem> = items
        .iter()
        .filter(|i| i.reference.starts_with(&prefix))
        .collect();
    accruals.sort_by_key(|i| i.move_id);
    accruals.dedup_by_key(|i| i.move_id);
    if accruals.is_empty() {
        return Ok(Reversal::NothingAccrued);
    }
    let reason = format!("{prefix}{REVERSAL_MARK}{}", event_tag(event));
    // Reversals to finish: those found draft, and those the wizard made (it may leave them draft).
    let mut unfinished = Vec::new();
    let mut created = Vec::new();
    for accrual in &accruals {
        if let Some(reversal) = items
            .iter()
            .find(|i| i.is_reversal(&prefix) && i.reverses(&accrual.move_name))
        {
            if reversal.state == "draft" {
                unfinished.push(reversal.move_id);
            }
            continue;
        }
        // Only posted entries can be reversed; a draft is what a crashed attempt left behind.
        if accrual.state == "draft" {
            post(odoo, &[accrual.move_id]).await?;
        }
        created.push(reverse_one(odoo, accrual.move_id, date, &reason, journal).await?);
    }
    unfinished.extend(created.iter().copied());
    let drafts = post_drafts(odoo, &unfinished).await?;
    let mut reversal_ids = created;
    reversal_ids.extend(drafts);
    reversal_ids.sort_unstable();
    reversal_ids.dedup();
    let accrual_ids: Vec<i64> = accruals.iter().map(|i| i.move_id).collect();
    if reversal_ids.is_empty() {
        return Ok(Reversal::AlreadyReversed);
    }
    tracing::info!(event_id = %event.event_id, ?accrual_ids, ?reversal_ids, "accrual reversed");
    Ok(Reversal::Reversed {
        accrual_ids,
        reversal_ids,
    })
}

/// Posts those of `moves` that are draft and returns them. A draft Odoo would post itself on its
/// date (`auto_post = at_date`, a reversal dated after Odoo's today) refuses `action_post`
/// ("This move is configured to be auto-posted on …"), so it is switched to manual posting
/// first: accrued freight must not stay on the books until a scheduler runs. Round trips: one
/// read, then a write only for scheduled drafts and one post for all drafts.
async fn post_drafts(odoo: &impl OdooPort, moves: &[i64]) -> Result<Vec<i64>, FinanceError> {
    if moves.is_empty() {
        return Ok(Vec::new());
    }
    let read = OdooCall::new("account.move", "read")
        .with_ids(moves.iter().copied())
        .with_arg("fields", json!(["state", "auto_post"]))
        .assuming(json!([]));
    let found = records(odoo.execute(&read).await?)?;
    let drafts: Vec<&Map<String, Value>> = found
        .iter()
        .filter(|r| text(r.get("state")) == Some("draft"))
        .collect();
    let scheduled: Vec<i64> = drafts
        .iter()
        .filter(|r| text(r.get("auto_post")).is_some_and(|a| a != "no"))
        .filter_map(|r| super::values::record_id(r))
        .collect();
    if !scheduled.is_empty() {
        let manual = OdooCall::new("account.move", "write")
            .with_ids(scheduled.iter().copied())
            .with_arg("vals", json!({"auto_post": "no"}))
            .assuming(json!(true));
        odoo.execute(&manual).await?;
    }
    let drafts: Vec<i64> = drafts
        .iter()
        .filter_map(|r| super::values::record_id(r))
        .collect();
    if !drafts.is_empty() {
        post(odoo, &drafts).await?;
    }
    Ok(drafts)
}

/// One entry through the reversal wizard; the id of its reversal.
async fn reverse_one(
    odoo: &impl OdooPort,
    accrual: i64,
    date: NaiveDate,
    reason: &str,
    journal: i64,
) -> Result<i64, FinanceError> {
    let context = json!({"active_model": "account.move", "active_ids": [accrual]});
    let wizard = OdooCall::new("account.move.reversal", "create")
        .with_arg(
            "vals_list",
            json!([{
                "move_ids": [[6, 0, [accrual]]],
                "date": date.to_string(),
                "reason": reason,
                "journal_id": journal,
            }]),
        )
        .with_arg("context", context.clone())
        .assuming(json!([0]));
    let wizard_id = created_id(
        &odoo.execute(&wizard).await?,
        "account.move.reversal.create",
    )?;
    let reverse = OdooCall::new("account.move.reversal", "reverse_moves")
        .with_ids([wizard_id])
        .with_arg("context", context)
        .assuming(
            json!({"type": "ir.actions.act_window", "res_model": "account.move", "res_id": 0}),
        );
    let action = odoo.execute(&reverse).await?;
    // A wizard of one entry opens its reversal (`res_id`).
    action.get("res_id").and_then(Value::as_i64).ok_or_else(|| {
        OdooError::protocol("account.move.reversal.reverse_moves opened no reversal").into()
    })
}

/// The shipment's items on the accrued-freight account, accruals and reversals alike (their
/// `ref` holds the prefix), not cancelled. `ilike` also matches `_`/`%` inside a tracking number
/// as wildcards, so each reference is checked exactly afterwards.
async fn accrual_items(
    odoo: &impl OdooPort,
    liability: i64,
    prefix: &str,
) -> Result<Vec<AccrualItem>, FinanceError> {
    let lookup = OdooCall::new("account.move.line", "search_read")
        .with_arg(
            "domain",
            json!([
                ["account_id", "=", liability],
                ["ref", "ilike", prefix],
                ["parent_state", "!=", "cancel"],
            ]),
        )
        .with_arg(
            "fields",
            json!(["move_id", "move_name", "ref", "balance", "parent_state"]),
        )
        .with_arg("order", "id asc")
        .assuming(json!([]));
    Ok(records(odoo.execute(&lookup).await?)?
        .iter()
        .filter_map(|r| {
            let reference = text(r.get("ref"))?.to_owned();
            reference.contains(prefix).then_some(())?;
            Some(AccrualItem {
                move_id: many2one_id(r.get("move_id"))?,
                reference,
                balance: money::from_wire(r.get("balance")).unwrap_or_default(),
                state: text(r.get("parent_state")).unwrap_or("posted").to_owned(),
                move_name: text(r.get("move_name")).unwrap_or("/").to_owned(),
            })
        })
        .collect())
}

async fn post(odoo: &impl OdooPort, move_ids: &[i64]) -> Result<(), FinanceError> {
    let post = OdooCall::new("account.move", "action_post")
        .with_ids(move_ids.iter().copied())
        .assuming(json!(false));
    odoo.execute(&post).await?;
    Ok(())
}

/// `line_ids` commands of a checked entry.
fn entry_commands(lines: &[EntryLine]) -> Result<Value, FinanceError> {
    let mut commands = Vec::with_capacity(lines.len());
    for line in lines {
        let mut vals = Map::new();
        vals.insert("account_id".into(), json!(line.account_id));
        vals.insert("name".into(), json!(line.label));
        vals.insert("debit".into(), money::to_wire(line.debit)?);
        vals.insert("credit".into(), money::to_wire(line.credit)?);
        if let Some(partner) = line.partner_id {
            vals.insert("partner_id".into(), json!(partner));
        }
        commands.push(json!([0, 0, vals]));
    }
    Ok(Value::Array(commands))
}

#[cfg(test)]
mod tests {
    use crate::canonical::{CostEstimate, EstimateKind, EventBody, SCHEMA, ShipmentRef, event_id};

    use super::*;

    fn event(at: &str) -> CanonicalEvent {
        CanonicalEvent {
            schema: SCHEMA.into(),
            event_id: event_id("easypost", at, 0),
            partner: "easypost".into(),
            source_event_id: at.into(),
            correlation_id: at.into(),
            occurred_at: at.parse().unwrap(),
            received_at: at.parse().unwrap(),
            shipment: ShipmentRef {
                tracking_number: "SHP-77".into(),
                carrier: Some("OFL".into()),
                reference: None,
            },
            body: EventBody::CostEstimated(CostEstimate {
                estimate: Estimate {
                    kind: EstimateKind::Booking,
                    currency: "USD".into(),
                    total: "900".parse().unwrap(),
                    lines: vec![],
                },
            }),
        }
    }

    fn item(reference: &str, balance: &str) -> AccrualItem {
        AccrualItem {
            move_id: 1,
            reference: reference.into(),
            balance: balance.parse().unwrap(),
            state: "posted".into(),
            move_name: "MISC/2026/11/0001".into(),
        }
    }

    #[test]
    fn references_order_revisions_by_the_estimate_time() {
        let early = accrual_ref(&event("2026-11-27T09:00:00Z"));
        let late = accrual_ref(&event("2026-11-28T10:30:00Z"));
        assert!(early.starts_with("FB-ACR/SHP-77/20261127T090000Z/fb:"));
        let prefix = shipment_prefix(&event("2026-11-27T09:00:00Z"));
        assert!(item(&early, "-900").stamp(&prefix) < item(&late, "-900").stamp(&prefix));
    }

    #[test]
    fn reversals_are_told_apart_from_accruals_by_their_ref() {
        let prefix = "FB-ACR/SHP-77/";
        let accrual = item("FB-ACR/SHP-77/20261127T090000Z/fb:1a2b3c4d", "-900");
        let reversal = item(
            "Reversal of: MISC/2026/11/0001, FB-ACR/SHP-77/REV/fb:9f8e7d6c",
            "900",
        );
        assert!(!accrual.is_reversal(prefix));
        assert!(reversal.is_reversal(prefix));
        assert_eq!(reversal.stamp(prefix), None);
        // A reversal names the entry it reverses; a longer number is another entry.
        assert!(reversal.reverses("MISC/2026/11/0001"));
        assert!(!reversal.reverses("MISC/2026/11/00010"));
        assert!(!reversal.reverses("MISC/2026/11/0002"));
        assert!(!reversal.reverses("/"));
    }

    #[test]
    fn entry_lines_go_out_as_numbers_with_their_partner() {
        let lines = [
            EntryLine {
                account_id: 32,
                label: "Accrued freight SHP-77".into(),
                debit: "900".parse().unwrap(),
                credit: Decimal::ZERO,
                partner_id: Some(6),
            },
            EntryLine {
                account_id: 16,
                label: "Accrued freight SHP-77".into(),
                debit: Decimal::ZERO,
                credit: "900".parse().unwrap(),
                partner_id: Some(6),
            },
        ];
        // The shape of transcript 046.
        assert_eq!(
            entry_commands(&lines).unwrap(),
            json!([
                [0, 0, {"account_id": 32, "name": "Accrued freight SHP-77", "debit": 900.0, "credit": 0.0, "partner_id": 6}],
                [0, 0, {"account_id": 16, "name": "Accrued freight SHP-77", "debit": 0.0, "credit": 900.0, "partner_id": 6}],
            ])
        );
    }
}
