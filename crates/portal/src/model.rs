//! Who is calling: the four roles of the programme and the tenant a caller belongs to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the programme: registers plants and providers, budgets, vouchers, targets.
    Officer,
    /// Reviews evidence across plants and designates benchmark factories.
    Assessor,
    /// A plant's own staff: its evidence, its vouchers, its needs.
    Plant,
    /// A service provider: its offers, the vouchers it is contracted on, open needs.
    Provider,
    /// The portal itself (sign-in lookups, NATS ingest, seeding); never a user's role.
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Assessor => "assessor",
            Role::Plant => "plant",
            Role::Provider => "provider",
            Role::System => "system",
        }
    }

    /// A user's role by name (`system` is not one).
    pub fn parse(name: &str) -> Option<Role> {
        Role::PEOPLE.into_iter().find(|r| r.as_str() == name)
    }

    pub const PEOPLE: [Role; 4] = [Role::Officer, Role::Assessor, Role::Plant, Role::Provider];

    pub(crate) fn is_staff(self) -> bool {
        matches!(self, Role::Officer | Role::Assessor | Role::System)
    }

    pub(crate) fn is_officer(self) -> bool {
        matches!(self, Role::Officer | Role::System)
    }
}

/// The signed-in caller; every query runs in this caller's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub user: String,
    pub role: Role,
    /// The plant a `plant` user belongs to.
    pub plant: Option<String>,
    /// The provider a `provider` user belongs to.
    pub provider: Option<String>,
}

impl Caller {
    /// The portal acting on its own behalf.
    pub fn system() -> Caller {
        Caller {
            user: "portal".into(),
            role: Role::System,
            plant: None,
            provider: None,
        }
    }

    /// Whether this caller may act for `plant` (staff may act for every plant).
    pub(crate) fn owns_plant(&self, plant: &str) -> bool {
        self.role.is_staff() || self.plant.as_deref() == Some(plant)
    }
}
