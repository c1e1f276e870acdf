//! Programme money: budgets funded from the programme, vouchers issued from budgets to plants,
//! redeemed by the contracted provider against an invoice or metered compute (the voucher pays
//! at most its share; the plant co-pays the rest), withdrawn or expired back to the budget.
//!
//! Every movement is one balanced journal of the double-entry ledger, written in the same
//! transaction as the voucher row it moves, with an audit row. Accounts: `funding:YEAR` (what
//! the programme granted, negative), `budget:ID` (not yet issued), `voucher:ID` (issued, not
//! yet spent), `payable:PROVIDER` (owed to a provider). A voucher's `remaining_fen` always
//! equals its account's balance; redemption locks the voucher row, so concurrent redemptions
//! of one voucher queue and never spend more than it holds.

use crate::error::PortalError;
use crate::model::Caller;
use crate::money::Yuan;
use crate::portal::{Named, Portal, audit, require, require_officer};
use crate::registry::check_id;
use aifactory_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    pub id: String,
    /// `compute`, `scenario` or `services`.
    pub category: String,
    pub year: i32,
    pub amount: Yuan,
    /// The most of an invoice a voucher pays, in per cent (the programme's compute vouchers: 30).
    #[serde(default = "default_share")]
    pub max_share_pct: u8,
    /// What one firm may receive from this category in this year.
    pub cap_per_firm: Yuan,
}

fn default_share() -> u8 {
    30
}

/// Refuses an amount from a request that is larger than the portal computes with
/// ([`Yuan::MAX`]), naming the field: past it, a share of the amount would not fit in 64 bits.
fn check_at_most_max(field: &str, amount: Yuan) -> Result<(), PortalError> {
    if amount > Yuan::MAX {
        Err(PortalError::invalid(format!(
            "{field} {amount}: at most {} yuan",
            Yuan::MAX
        )))
    } else {
        Ok(())
    }
}

pub(crate) const CATEGORIES: [&str; 3] = ["compute", "scenario", "services"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    pub id: String,
    pub category: String,
    pub year: i32,
    pub amount: Yuan,
    pub max_share_pct: i16,
    pub cap_per_firm: Yuan,
    /// Not yet issued (the ledger balance of `budget:ID`).
    pub available: Yuan,
    /// Issued and not yet spent.
    pub outstanding: Yuan,
    /// Paid to providers.
    pub redeemed: Yuan,
    pub vouchers: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVoucher {
    pub budget: String,
    pub plant: String,
    pub amount: Yuan,
    pub expires_at_ms: i64,
    /// The contracted provider, if already chosen (the plant may name it later).
    #[serde(default)]
    pub provider: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoucherRecord {
    pub id: String,
    pub budget: String,
    pub category: String,
    pub year: i32,
    pub plant: String,
    pub provider: Option<String>,
    pub amount: Yuan,
    pub remaining: Yuan,
    pub returned: Yuan,
    pub redeemed: Yuan,
    pub max_share_pct: i16,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub status: String,
}

const VOUCHER_COLUMNS: &str = "id, budget_id, category, year, plant_id, provider_id, amount_fen, \
    remaining_fen, returned_fen, max_share_pct, issued_at_ms, expires_at_ms, status";

fn voucher_from_row(row: &PgRow) -> Result<VoucherRecord, sqlx::Error> {
    let amount: i64 = row.try_get("amount_fen")?;
    let remaining: i64 = row.try_get("remaining_fen")?;
    let returned: i64 = row.try_get("returned_fen")?;
    Ok(VoucherRecord {
        id: row.try_get("id")?,
        budget: row.try_get("budget_id")?,
        category: row.try_get("category")?,
        year: row.try_get("year")?,
        plant: row.try_get("plant_id")?,
        provider: row.try_get("provider_id")?,
        amount: Yuan(amount),
        remaining: Yuan(remaining),
        returned: Yuan(returned),
        redeemed: Yuan(amount - remaining - returned),
        max_share_pct: row.try_get("max_share_pct")?,
        issued_at_ms: row.try_get("issued_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        status: row.try_get("status")?,
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherFilter {
    pub plant: Option<String>,
    pub provider: Option<String>,
    pub budget: Option<String>,
    pub status: Option<String>,
    pub year: Option<i32>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoucherBook {
    /// Over every voucher the filter matches, not only the page.
    pub count: i64,
    pub amount: Yuan,
    pub remaining: Yuan,
    pub redeemed: Yuan,
    pub returned: Yuan,
    pub vouchers: Vec<VoucherRecord>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRedemption {
    /// The provider's invoice number; one invoice is paid from vouchers once.
    pub invoice_no: String,
    /// `invoice` (a contract's invoice) or `metered` (metered compute usage).
    #[serde(default = "default_kind")]
    pub kind: String,
    pub invoice_total: Yuan,
}

fn default_kind() -> String {
    "invoice".into()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedemptionRecord {
    pub id: i64,
    pub voucher: String,
    pub provider: String,
    pub plant: String,
    pub invoice_no: String,
    pub kind: String,
    pub invoice_total: Yuan,
    /// Paid from the voucher.
    pub covered: Yuan,
    /// The plant's co-payment.
    pub plant_pays: Yuan,
    pub at_ms: i64,
    pub journal: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountClass {
    /// `funding`, `budget`, `voucher`, `payable`.
    pub class: String,
    pub accounts: i64,
    pub balance: Yuan,
}

/// The books' health: class balances that sum to zero, and any journal or voucher that does not fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialBalance {
    pub classes: Vec<AccountClass>,
    /// The sum of every posting: zero when the books balance.
    pub total: Yuan,
    pub journals: i64,
    pub postings: i64,
    /// Journals whose postings do not sum to zero (first 20).
    pub unbalanced_journals: Vec<i64>,
    /// Vouchers whose `remaining` differs from their ledger account (first 20).
    pub mismatched_vouchers: Vec<String>,
    pub balanced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub subject: String,
    pub plant: Option<String>,
    pub provider: Option<String>,
    pub detail: serde_json::Value,
}

/// Writes one balanced journal: its postings go in as one statement, which the database
/// refuses unless they sum to zero.
#[allow(clippy::too_many_arguments)]
async fn post(
    tx: &mut Transaction<'static, Postgres>,
    at_ms: i64,
    kind: &str,
    memo: &str,
    actor: &str,
    budget: Option<&str>,
    voucher: Option<&str>,
    postings: &[(String, i64)],
) -> Result<i64, PortalError> {
    // The id comes first: a provider may write the books but not read them back (no RETURNING).
    let journal: i64 = sqlx::query_scalar("SELECT nextval('journal_id_seq')")
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO journal (id, at_ms, kind, memo, actor, budget_id, voucher_id) \
         VALUES ($7, $1, $2, $3, $4, $5, $6)",
    )
    .bind(at_ms)
    .bind(kind)
    .bind(memo)
    .bind(actor)
    .bind(budget)
    .bind(voucher)
    .bind(journal)
    .execute(&mut **tx)
    .await?;
    let accounts: Vec<&str> = postings.iter().map(|(a, _)| a.as_str()).collect();
    let amounts: Vec<i64> = postings.iter().map(|(_, v)| *v).collect();
    sqlx::query(
        "INSERT INTO postings (journal_id, account, amount_fen) \
         SELECT $1, account, amount FROM UNNEST($2::text[], $3::bigint[]) AS p(account, amount)",
    )
    .bind(journal)
    .bind(&accounts)
    .bind(&amounts)
    .execute(&mut **tx)
    .await?;
    Ok(journal)
}

impl Portal {
    /// Creates a budget and funds it from the programme (officers).
    pub async fn create_budget(
        &self,
        caller: &Caller,
        budget: &NewBudget,
    ) -> Result<BudgetStatus, PortalError> {
        require_officer(caller, "create budgets")?;
        check_id("budget", &budget.id)?;
        if !CATEGORIES.contains(&budget.category.as_str()) {
            return Err(PortalError::invalid(format!(
                "category {:?}: one of {}",
                budget.category,
                CATEGORIES.join(", ")
            )));
        }
        if budget.amount.fen() <= 0 || budget.cap_per_firm.fen() <= 0 {
            return Err(PortalError::invalid(
                "amount and cap_per_firm must be more than zero",
            ));
        }
        check_at_most_max("amount", budget.amount)?;
        check_at_most_max("cap_per_firm", budget.cap_per_firm)?;
        if !(1..=100).contains(&budget.max_share_pct) {
            return Err(PortalError::invalid("max_share_pct: 1 to 100"));
        }
        if !(2000..=2100).contains(&budget.year) {
            return Err(PortalError::invalid("year: 2000 to 2100"));
        }
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let inserted = sqlx::query(
            "INSERT INTO budgets (id, category, year, amount_fen, max_share_pct, cap_per_firm_fen, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&budget.id)
        .bind(&budget.category)
        .bind(budget.year)
        .bind(budget.amount.fen())
        .bind(i16::from(budget.max_share_pct))
        .bind(budget.cap_per_firm.fen())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(PortalError::Conflict(format!(
                "budget {} already exists",
                budget.id
            )));
        }
        let journal = post(
            &mut tx,
            now,
            "fund",
            &format!(
                "fund budget {} ({} {})",
                budget.id, budget.category, budget.year
            ),
            &caller.user,
            Some(&budget.id),
            None,
            &[
                (format!("funding:{}", budget.year), -budget.amount.fen()),
                (format!("budget:{}", budget.id), budget.amount.fen()),
            ],
        )
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "budget.create",
            &budget.id,
            json!({"amount": budget.amount, "category": budget.category, "year": budget.year, "journal": journal}),
        )
        .await?;
        tx.commit().await?;
        Ok(BudgetStatus {
            id: budget.id.clone(),
            category: budget.category.clone(),
            year: budget.year,
            amount: budget.amount,
            max_share_pct: i16::from(budget.max_share_pct),
            cap_per_firm: budget.cap_per_firm,
            available: budget.amount,
            outstanding: Yuan(0),
            redeemed: Yuan(0),
            vouchers: 0,
        })
    }

    /// Every budget with what is available, outstanding and redeemed (staff).
    pub async fn budgets(&self, caller: &Caller) -> Result<Vec<BudgetStatus>, PortalError> {
        if !caller.role.is_staff() {
            return Err(PortalError::Forbidden(
                "budgets are for programme staff".into(),
            ));
        }
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(
            "SELECT b.id, b.category, b.year, b.amount_fen, b.max_share_pct, b.cap_per_firm_fen, \
                    coalesce((SELECT sum(amount_fen) FROM postings WHERE account = 'budget:' || b.id), 0)::bigint AS available, \
                    coalesce(v.outstanding, 0)::bigint AS outstanding, coalesce(v.redeemed, 0)::bigint AS redeemed, \
                    coalesce(v.n, 0) AS n \
             FROM budgets b LEFT JOIN ( \
                 SELECT budget_id, sum(remaining_fen) AS outstanding, \
                        sum(amount_fen - remaining_fen - returned_fen) AS redeemed, count(*) AS n \
                 FROM vouchers GROUP BY budget_id) v ON v.budget_id = b.id \
             ORDER BY b.year DESC, b.id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(BudgetStatus {
                    id: row.try_get("id")?,
                    category: row.try_get("category")?,
                    year: row.try_get("year")?,
                    amount: Yuan(row.try_get("amount_fen")?),
                    max_share_pct: row.try_get("max_share_pct")?,
                    cap_per_firm: Yuan(row.try_get("cap_per_firm_fen")?),
                    available: Yuan(row.try_get("available")?),
                    outstanding: Yuan(row.try_get("outstanding")?),
                    redeemed: Yuan(row.try_get("redeemed")?),
                    vouchers: row.try_get("n")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(PortalError::from)
    }

    /// Issues a voucher from a budget to a plant (officers), within the budget and the firm's cap.
    pub async fn issue_voucher(
        &self,
        caller: &Caller,
        voucher: &NewVoucher,
    ) -> Result<VoucherRecord, PortalError> {
        require_officer(caller, "issue vouchers")?;
        if voucher.amount.fen() <= 0 {
            return Err(PortalError::invalid("amount must be more than zero"));
        }
        check_at_most_max("amount", voucher.amount)?;
        let now = self.now_ms();
        if voucher.expires_at_ms <= now {
            return Err(PortalError::invalid(format!(
                "expires_at_ms {} is not in the future",
                Timestamp(voucher.expires_at_ms)
            )));
        }
        let mut tx = self.begin(caller).await?;
        // Issues from one budget queue here, so two cannot both take its last yuan.
        let budget = sqlx::query(
            "SELECT category, year, max_share_pct, cap_per_firm_fen FROM budgets WHERE id = $1 FOR UPDATE",
        )
        .bind(&voucher.budget)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| PortalError::not_found("budget", &voucher.budget))?;
        let category: String = budget.try_get("category")?;
        let year: i32 = budget.try_get("year")?;
        let share: i16 = budget.try_get("max_share_pct")?;
        let cap: i64 = budget.try_get("cap_per_firm_fen")?;
        require(&mut tx, Named::Plant, &voucher.plant).await?;
        if let Some(provider) = &voucher.provider {
            require(&mut tx, Named::Provider, provider).await?;
        }
        let available: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(amount_fen), 0)::bigint FROM postings WHERE account = $1",
        )
        .bind(format!("budget:{}", voucher.budget))
        .fetch_one(&mut *tx)
        .await?;
        if voucher.amount.fen() > available {
            return Err(PortalError::Conflict(format!(
                "budget {} has {} yuan left, less than {}",
                voucher.budget,
                Yuan(available),
                voucher.amount
            )));
        }
        // Serialise issues to one firm too (another budget of the category may be issuing).
        sqlx::query("SELECT id FROM plants WHERE id = $1 FOR UPDATE")
            .bind(&voucher.plant)
            .execute(&mut *tx)
            .await?;
        let received: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(amount_fen - returned_fen), 0)::bigint FROM vouchers \
             WHERE plant_id = $1 AND category = $2 AND year = $3",
        )
        .bind(&voucher.plant)
        .bind(&category)
        .bind(year)
        .fetch_one(&mut *tx)
        .await?;
        let after = Yuan(received).checked_add(voucher.amount);
        if after.is_none_or(|total| total.fen() > cap) {
            return Err(PortalError::Conflict(format!(
                "plant {} has received {} yuan of {category} vouchers in {year}; {} more would pass the cap of {} per firm",
                voucher.plant,
                Yuan(received),
                voucher.amount,
                Yuan(cap)
            )));
        }
        let number: i64 = sqlx::query_scalar("SELECT nextval('voucher_numbers')")
            .fetch_one(&mut *tx)
            .await?;
        let id = format!("V{year}-{number:06}");
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO vouchers (id, budget_id, category, year, plant_id, provider_id, amount_fen, \
             remaining_fen, max_share_pct, issued_at_ms, expires_at_ms, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, 'active') RETURNING {VOUCHER_COLUMNS}"
        )))
        .bind(&id)
        .bind(&voucher.budget)
        .bind(&category)
        .bind(year)
        .bind(&voucher.plant)
        .bind(voucher.provider.as_deref())
        .bind(voucher.amount.fen())
        .bind(share)
        .bind(now)
        .bind(voucher.expires_at_ms)
        .fetch_one(&mut *tx)
        .await?;
        let journal = post(
            &mut tx,
            now,
            "issue",
            &format!("voucher {id} to plant {}", voucher.plant),
            &caller.user,
            Some(&voucher.budget),
            Some(&id),
            &[
                (format!("budget:{}", voucher.budget), -voucher.amount.fen()),
                (format!("voucher:{id}"), voucher.amount.fen()),
            ],
        )
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "voucher.issue",
            &id,
            json!({"plant": voucher.plant, "budget": voucher.budget, "amount": voucher.amount, "journal": journal}),
        )
        .await?;
        tx.commit().await?;
        Ok(voucher_from_row(&row)?)
    }

    pub async fn voucher(&self, caller: &Caller, id: &str) -> Result<VoucherRecord, PortalError> {
        let mut tx = self.begin(caller).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        // Row-level security hides other tenants' vouchers: they are "not found", like absent ones.
        match row {
            Some(row) => Ok(voucher_from_row(&row)?),
            None => Err(PortalError::not_found("voucher", id)),
        }
    }

    /// The voucher book: totals over every voucher the filter matches and one page of them,
    /// newest first. Plants see their own, providers those they are contracted on.
    pub async fn vouchers(
        &self,
        caller: &Caller,
        filter: &VoucherFilter,
    ) -> Result<VoucherBook, PortalError> {
        let limit = filter.limit.unwrap_or(50).clamp(1, 500);
        let offset = filter.offset.unwrap_or(0).max(0);
        const WHERE: &str = "WHERE ($1::text IS NULL OR plant_id = $1) AND ($2::text IS NULL OR provider_id = $2) \
             AND ($3::text IS NULL OR budget_id = $3) AND ($4::text IS NULL OR status = $4) \
             AND ($5::int IS NULL OR year = $5)";
        let mut tx = self.begin(caller).await?;
        let totals = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) AS n, coalesce(sum(amount_fen), 0)::bigint AS amount, \
                    coalesce(sum(remaining_fen), 0)::bigint AS remaining, \
                    coalesce(sum(returned_fen), 0)::bigint AS returned FROM vouchers {WHERE}"
        )))
        .bind(filter.plant.as_deref())
        .bind(filter.provider.as_deref())
        .bind(filter.budget.as_deref())
        .bind(filter.status.as_deref())
        .bind(filter.year)
        .fetch_one(&mut *tx)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers {WHERE} ORDER BY issued_at_ms DESC, id DESC LIMIT $6 OFFSET $7"
        )))
        .bind(filter.plant.as_deref())
        .bind(filter.provider.as_deref())
        .bind(filter.budget.as_deref())
        .bind(filter.status.as_deref())
        .bind(filter.year)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let amount: i64 = totals.try_get("amount")?;
        let remaining: i64 = totals.try_get("remaining")?;
        let returned: i64 = totals.try_get("returned")?;
        Ok(VoucherBook {
            count: totals.try_get("n")?,
            amount: Yuan(amount),
            remaining: Yuan(remaining),
            returned: Yuan(returned),
            redeemed: Yuan(amount - remaining - returned),
            vouchers: rows
                .iter()
                .map(voucher_from_row)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Names the provider contracted on a voucher: the plant, before anything is redeemed,
    /// or an officer.
    pub async fn assign_provider(
        &self,
        caller: &Caller,
        id: &str,
        provider: &str,
    ) -> Result<VoucherRecord, PortalError> {
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let voucher = lock_voucher(&mut tx, id).await?;
        if !(caller.role.is_officer() || caller.plant.as_deref() == Some(voucher.plant.as_str())) {
            return Err(PortalError::Forbidden(format!(
                "only plant {} and programme officers choose the provider of {id}",
                voucher.plant
            )));
        }
        if voucher.status != "active" {
            return Err(PortalError::Conflict(format!(
                "voucher {id} is {}",
                voucher.status
            )));
        }
        if voucher.redeemed.fen() > 0 && !caller.role.is_officer() {
            return Err(PortalError::Conflict(format!(
                "voucher {id} has been redeemed by {}; only an officer changes its provider now",
                voucher.provider.as_deref().unwrap_or("?")
            )));
        }
        require(&mut tx, Named::Provider, provider).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE vouchers SET provider_id = $2 WHERE id = $1 RETURNING {VOUCHER_COLUMNS}"
        )))
        .bind(id)
        .bind(provider)
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            caller,
            now,
            "voucher.assign",
            id,
            json!({"provider": provider, "was": voucher.provider}),
        )
        .await?;
        tx.commit().await?;
        Ok(voucher_from_row(&row)?)
    }

    /// The contracted provider redeems a voucher against an invoice: the voucher pays its share
    /// (at most what it holds), the plant the rest. Spends at most once per invoice and never
    /// more than the voucher holds, however many redeem at once.
    pub async fn redeem(
        &self,
        caller: &Caller,
        id: &str,
        redemption: &NewRedemption,
    ) -> Result<RedemptionRecord, PortalError> {
        let Some(provider) = caller.provider.clone() else {
            return Err(PortalError::Forbidden(
                "only the contracted provider redeems a voucher".into(),
            ));
        };
        if !["invoice", "metered"].contains(&redemption.kind.as_str()) {
            return Err(PortalError::invalid(format!(
                "kind {:?}: `invoice` or `metered`",
                redemption.kind
            )));
        }
        let invoice_no = redemption.invoice_no.trim();
        if invoice_no.is_empty() || invoice_no.chars().count() > 80 {
            return Err(PortalError::invalid("invoice_no: 1–80 characters"));
        }
        if redemption.invoice_total.fen() <= 0 {
            return Err(PortalError::invalid("invoice_total must be more than zero"));
        }
        check_at_most_max("invoice_total", redemption.invoice_total)?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        // The lock every redemption of this voucher queues on.
        let voucher = lock_voucher(&mut tx, id).await?;
        if voucher.provider.as_deref() != Some(provider.as_str()) {
            return Err(PortalError::Forbidden(format!(
                "voucher {id} is not contracted to {provider}"
            )));
        }
        if voucher.status != "active" {
            return Err(PortalError::Conflict(format!(
                "voucher {id} is {}",
                voucher.status
            )));
        }
        if now >= voucher.expires_at_ms {
            return Err(PortalError::Conflict(format!(
                "voucher {id} expired at {}",
                Timestamp(voucher.expires_at_ms)
            )));
        }
        let share_cap = redemption
            .invoice_total
            .checked_share(voucher.max_share_pct)
            .ok_or_else(|| {
                PortalError::invalid(format!(
                    "invoice_total {}: too large to take {} % of",
                    redemption.invoice_total, voucher.max_share_pct
                ))
            })?;
        let covered = share_cap.fen().min(voucher.remaining.fen());
        if covered <= 0 {
            return Err(PortalError::Conflict(format!(
                "voucher {id} covers nothing of this invoice (holds {}, pays at most {} %)",
                voucher.remaining, voucher.max_share_pct
            )));
        }
        let left = voucher.remaining.fen() - covered;
        sqlx::query(
            "UPDATE vouchers SET remaining_fen = $2, status = CASE WHEN $2 = 0 THEN 'spent' ELSE status END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(left)
        .execute(&mut *tx)
        .await?;
        let journal = post(
            &mut tx,
            now,
            "redeem",
            &format!("{provider} invoice {invoice_no} on voucher {id}"),
            &caller.user,
            Some(&voucher.budget),
            Some(id),
            &[
                (format!("voucher:{id}"), -covered),
                (format!("payable:{provider}"), covered),
            ],
        )
        .await?;
        let redemption_id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO redemptions (voucher_id, provider_id, plant_id, invoice_no, kind, \
             invoice_total_fen, covered_fen, at_ms, journal_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (provider_id, invoice_no) DO NOTHING RETURNING id",
        )
        .bind(id)
        .bind(&provider)
        .bind(&voucher.plant)
        .bind(invoice_no)
        .bind(&redemption.kind)
        .bind(redemption.invoice_total.fen())
        .bind(covered)
        .bind(now)
        .bind(journal)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(redemption_id) = redemption_id else {
            // Dropping the transaction rolls back the voucher and the journal above.
            return Err(PortalError::Conflict(format!(
                "invoice {invoice_no} of {provider} has already been paid from a voucher"
            )));
        };
        audit(
            &mut tx,
            caller,
            now,
            "voucher.redeem",
            id,
            json!({"invoice_no": invoice_no, "kind": redemption.kind, "invoice_total": redemption.invoice_total,
                   "covered": Yuan(covered), "journal": journal, "plant": voucher.plant}),
        )
        .await?;
        tx.commit().await?;
        Ok(RedemptionRecord {
            id: redemption_id,
            voucher: id.to_owned(),
            provider,
            plant: voucher.plant,
            invoice_no: invoice_no.to_owned(),
            kind: redemption.kind.clone(),
            invoice_total: redemption.invoice_total,
            covered: Yuan(covered),
            plant_pays: Yuan(redemption.invoice_total.fen() - covered),
            at_ms: now,
            journal,
        })
    }

    /// Redemptions of a voucher (whoever may read the voucher).
    pub async fn redemptions(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<RedemptionRecord>, PortalError> {
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(
            "SELECT id, voucher_id, provider_id, plant_id, invoice_no, kind, invoice_total_fen, \
                    covered_fen, at_ms, journal_id FROM redemptions WHERE voucher_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                let total: i64 = r.try_get("invoice_total_fen")?;
                let covered: i64 = r.try_get("covered_fen")?;
                Ok(RedemptionRecord {
                    id: r.try_get("id")?,
                    voucher: r.try_get("voucher_id")?,
                    provider: r.try_get("provider_id")?,
                    plant: r.try_get("plant_id")?,
                    invoice_no: r.try_get("invoice_no")?,
                    kind: r.try_get("kind")?,
                    invoice_total: Yuan(total),
                    covered: Yuan(covered),
                    plant_pays: Yuan(total - covered),
                    at_ms: r.try_get("at_ms")?,
                    journal: r.try_get("journal_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(PortalError::from)
    }

    /// Withdraws a voucher (officers): what it still holds goes back to its budget.
    pub async fn withdraw_voucher(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<VoucherRecord, PortalError> {
        require_officer(caller, "withdraw vouchers")?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let voucher = close_voucher(&mut tx, caller, now, id, "withdrawn").await?;
        tx.commit().await?;
        Ok(voucher)
    }

    /// Expires every active voucher past its date (officers); returns how many.
    pub async fn expire_due(&self, caller: &Caller) -> Result<u64, PortalError> {
        require_officer(caller, "expire vouchers")?;
        let now = self.now_ms();
        let mut tx = self.begin(caller).await?;
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM vouchers WHERE status = 'active' AND expires_at_ms <= $1 ORDER BY id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &due {
            close_voucher(&mut tx, caller, now, id, "expired").await?;
        }
        tx.commit().await?;
        Ok(due.len() as u64)
    }

    /// The trial balance (officers).
    pub async fn trial_balance(&self, caller: &Caller) -> Result<TrialBalance, PortalError> {
        require_officer(caller, "read the books")?;
        let mut tx = self.begin(caller).await?;
        let classes = sqlx::query(
            "SELECT split_part(account, ':', 1) AS class, count(DISTINCT account) AS accounts, \
                    sum(amount_fen)::bigint AS balance FROM postings GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&mut *tx)
        .await?;
        let counts = sqlx::query(
            "SELECT (SELECT count(*) FROM journal) AS journals, (SELECT count(*) FROM postings) AS postings, \
                    (SELECT coalesce(sum(amount_fen), 0)::bigint FROM postings) AS total",
        )
        .fetch_one(&mut *tx)
        .await?;
        let unbalanced: Vec<i64> = sqlx::query_scalar(
            "SELECT journal_id FROM postings GROUP BY journal_id HAVING sum(amount_fen) <> 0 \
             ORDER BY journal_id LIMIT 20",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mismatched: Vec<String> = sqlx::query_scalar(
            "SELECT v.id FROM vouchers v LEFT JOIN ( \
                 SELECT account, sum(amount_fen) AS balance FROM postings \
                 WHERE account LIKE 'voucher:%' GROUP BY account) p ON p.account = 'voucher:' || v.id \
             WHERE v.remaining_fen <> coalesce(p.balance, 0) ORDER BY v.id LIMIT 20",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let total: i64 = counts.try_get("total")?;
        let balanced = total == 0 && unbalanced.is_empty() && mismatched.is_empty();
        Ok(TrialBalance {
            classes: classes
                .iter()
                .map(|r| {
                    Ok(AccountClass {
                        class: r.try_get("class")?,
                        accounts: r.try_get("accounts")?,
                        balance: Yuan(r.try_get("balance")?),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?,
            total: Yuan(total),
            journals: counts.try_get("journals")?,
            postings: counts.try_get("postings")?,
            unbalanced_journals: unbalanced,
            mismatched_vouchers: mismatched,
            balanced,
        })
    }

    /// The audit trail, newest first (officers); optionally one plant's.
    pub async fn audit_trail(
        &self,
        caller: &Caller,
        plant: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, PortalError> {
        require_officer(caller, "read the audit trail")?;
        let mut tx = self.begin(caller).await?;
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, role, action, subject, plant_id, provider_id, detail::text AS detail \
             FROM audit WHERE ($1::text IS NULL OR plant_id = $1 OR subject = $1) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(plant)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditRow {
                    id: r.try_get("id")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    plant: r.try_get("plant_id")?,
                    provider: r.try_get("provider_id")?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(PortalError::from)
    }
}

/// Reads a voucher and locks its row until the transaction ends: every change to a voucher
/// queues here, which is what keeps concurrent redemptions from spending it twice.
async fn lock_voucher(
    tx: &mut Transaction<'static, Postgres>,
    id: &str,
) -> Result<VoucherRecord, PortalError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| PortalError::not_found("voucher", id))?;
    Ok(voucher_from_row(&row)?)
}

/// Ends an active voucher as `withdrawn` or `expired`, returning what it holds to its budget.
async fn close_voucher(
    tx: &mut Transaction<'static, Postgres>,
    caller: &Caller,
    now: i64,
    id: &str,
    status: &str,
) -> Result<VoucherRecord, PortalError> {
    let voucher = lock_voucher(tx, id).await?;
    if voucher.status != "active" {
        return Err(PortalError::Conflict(format!(
            "voucher {id} is already {}",
            voucher.status
        )));
    }
    let rest = voucher.remaining.fen();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE vouchers SET remaining_fen = 0, returned_fen = returned_fen + $2, status = $3 \
         WHERE id = $1 RETURNING {VOUCHER_COLUMNS}"
    )))
    .bind(id)
    .bind(rest)
    .bind(status)
    .fetch_one(&mut **tx)
    .await?;
    let journal = if rest > 0 {
        Some(
            post(
                tx,
                now,
                if status == "expired" {
                    "expire"
                } else {
                    "withdraw"
                },
                &format!(
                    "voucher {id} {status}; {} back to {}",
                    Yuan(rest),
                    voucher.budget
                ),
                &caller.user,
                Some(&voucher.budget),
                Some(id),
                &[
                    (format!("voucher:{id}"), -rest),
                    (format!("budget:{}", voucher.budget), rest),
                ],
            )
            .await?,
        )
    } else {
        None
    };
    audit(
        tx,
        caller,
        now,
        &format!(
            "voucher.{}",
            if status == "expired" {
                "expire"
            } else {
                "withdraw"
            }
        ),
        id,
        json!({"returned": Yuan(rest), "journal": journal, "plant": voucher.plant}),
    )
    .await?;
    Ok(voucher_from_row(&row)?)
}
