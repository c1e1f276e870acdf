//! The programme office (`aifactory portal serve`): the registry of plants, providers and their
//! users; verified tiers from signed evidence bundles, with each plant's history, benchmark
//! designations and progress toward targets by district and industry; vouchers issued from
//! programme budgets and redeemed against providers' invoices on a double-entry ledger; plants'
//! needs matched to providers' offers; an audit row for every change.
//!
//! It owns the portal's PostgreSQL schema and is the only code that writes it. Tenant
//! isolation is enforced twice: by the API's authorisation matrix and checks, and by row-level
//! security in the database, which every query passes (the portal runs as a role that is
//! neither superuser nor owner, with the caller's tenant set per transaction). It must never
//! take a tier from anything but a verified bundle, never move money outside a balanced
//! journal, and never read the clock itself (callers inject it, so seeds replay exactly).

mod error;
mod evidence;
pub mod http;
mod limiter;
mod market;
mod model;
mod money;
pub mod nats;
pub mod onboard;
mod portal;
mod registry;
pub mod seed;
mod sign_in;
mod tokens;
mod ui;
mod vouchers;

pub use error::PortalError;
pub use evidence::EvidenceRecord;
pub use market::{Match, NeedRecord, NewNeed};
pub use model::{Caller, Role};
pub use money::Yuan;
pub use portal::{Clock, Portal};
pub use registry::{
    LARGE_SCALE_MYUAN, NewPlant, NewProvider, NewUser, Offer, PlantFilter, PlantRecord,
    ProviderRecord, Target, TargetRow, TargetsDashboard, UserRecord, parse_plants_csv,
};
pub use sign_in::{SESSION_MS, Session};
pub use tokens::{IssuedToken, MAX_TOKEN_DAYS, TOKEN_DAYS, TokenRecord};
pub use vouchers::{
    AuditRow, BudgetStatus, NewBudget, NewRedemption, NewVoucher, RedemptionRecord, TrialBalance,
    VoucherBook, VoucherFilter, VoucherRecord,
};
