//! The approval policy: who may ask for a tool, whose calls of an acting tool run at once and
//! within which bounds, and who may approve the rest. The runtime consults it on every path
//! (API, CLI, model, MCP); nothing acts without passing it.
//!
//! Two rules hold whatever the policy file says: the `agent` role never approves, and a call a
//! model or the planner chose runs at once only where the policy names `agent` among the roles
//! that may act without approval.

use crate::tools::{ToolKind, ToolSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Roles as the server names them.
pub const ROLES: [&str; 5] = ["viewer", "operator", "engineer", "admin", "agent"];

/// The rule for one tool; every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// Roles that may ask for the tool at all. Default: every role for reading tools;
    /// operator, engineer, admin and agent for acting ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_request: Option<Vec<String>>,
    /// Roles whose calls of an acting tool run without approval. Default: none.
    #[serde(default)]
    pub auto_for: Vec<String>,
    /// Runs without approval only while the change is at most this share of the parameter's
    /// range (set-points); larger changes are queued. Default: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_auto_change: Option<f64>,
    /// Roles that may approve or reject the tool's queued calls. Default: operator, engineer,
    /// admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
}

/// The policy: rules by tool name, and the step limit per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub tools: BTreeMap<String, ToolRule>,
    /// Model turns (or planner steps) per request, at most.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
}

fn default_max_steps() -> u32 {
    8
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            tools: BTreeMap::new(),
            max_steps: default_max_steps(),
        }
    }
}

/// Who chose a call: the person calling, or a model or the planner acting for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenBy {
    Person,
    Model,
    Planner,
}

/// What the policy says about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Run,
    /// Held until a person with one of these roles approves it.
    Queue {
        approvers: Vec<String>,
    },
    Refuse(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy: tool `{0}` is not a tool (tools: {1})")]
    UnknownTool(String, String),
    #[error(
        "policy: `{tool}`.{field} names role `{role}`, which does not exist (roles: viewer, operator, engineer, admin, agent)"
    )]
    UnknownRole {
        tool: String,
        field: &'static str,
        role: String,
    },
    #[error("policy: `{0}`.approvers may not include `agent`: an agent never approves")]
    AgentApprover(String),
    #[error("policy: `{0}`.max_auto_change must be between 0 and 1")]
    BadBound(String),
    #[error("policy: max_steps must be between 1 and 64")]
    BadSteps,
    #[error("policy file: {0}")]
    Parse(String),
}

const DEFAULT_APPROVERS: [&str; 3] = ["operator", "engineer", "admin"];
const DEFAULT_ACTORS: [&str; 4] = ["operator", "engineer", "admin", "agent"];

impl Policy {
    /// Reads a policy from TOML and checks it against the tools and roles.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// Refuses rules for tools or roles that do not exist, and agent approvers.
    pub fn check(&self) -> Result<(), PolicyError> {
        if !(1..=64).contains(&self.max_steps) {
            return Err(PolicyError::BadSteps);
        }
        let names: Vec<&str> = crate::tools::catalogue().iter().map(|t| t.name).collect();
        for (tool, rule) in &self.tools {
            if !names.contains(&tool.as_str()) {
                return Err(PolicyError::UnknownTool(tool.clone(), names.join(", ")));
            }
            let lists: [(&'static str, Option<&Vec<String>>); 3] = [
                ("may_request", rule.may_request.as_ref()),
                ("auto_for", Some(&rule.auto_for)),
                ("approvers", rule.approvers.as_ref()),
            ];
            for (field, roles) in lists {
                for role in roles.into_iter().flatten() {
                    if !ROLES.contains(&role.as_str()) {
                        return Err(PolicyError::UnknownRole {
                            tool: tool.clone(),
                            field,
                            role: role.clone(),
                        });
                    }
                }
            }
            if rule.approvers.iter().flatten().any(|r| r == "agent") {
                return Err(PolicyError::AgentApprover(tool.clone()));
            }
            if let Some(b) = rule.max_auto_change
                && !(b.is_finite() && (0.0..=1.0).contains(&b))
            {
                return Err(PolicyError::BadBound(tool.clone()));
            }
        }
        Ok(())
    }

    fn rule(&self, tool: &str) -> ToolRule {
        self.tools.get(tool).cloned().unwrap_or_default()
    }

    /// The verdict on `role` calling `tool`, chosen by `chosen_by`; `reach` is the change's
    /// share of the parameter's range (acting tools only).
    pub fn judge(&self, tool: &ToolSpec, role: &str, chosen_by: ChosenBy, reach: f64) -> Verdict {
        let rule = self.rule(tool.name);
        let may_request = match (&rule.may_request, tool.kind) {
            (Some(roles), _) => roles.iter().any(|r| r == role),
            (None, ToolKind::Read) => ROLES.contains(&role),
            (None, ToolKind::Act) => DEFAULT_ACTORS.contains(&role),
        };
        if !may_request {
            return Verdict::Refuse(format!(
                "the policy does not let the {role} role use `{}`",
                tool.name
            ));
        }
        if tool.kind == ToolKind::Read {
            return Verdict::Run;
        }
        let listed = |r: &str| rule.auto_for.iter().any(|a| a == r);
        let within = rule.max_auto_change.is_none_or(|b| reach <= b);
        let auto = listed(role) && (chosen_by == ChosenBy::Person || listed("agent")) && within;
        if auto {
            Verdict::Run
        } else {
            Verdict::Queue {
                approvers: self.approvers(tool.name),
            }
        }
    }

    /// Roles that may approve `tool`'s queued calls (never `agent`).
    pub fn approvers(&self, tool: &str) -> Vec<String> {
        let rule = self.rule(tool);
        let roles = rule
            .approvers
            .unwrap_or_else(|| DEFAULT_APPROVERS.iter().map(|r| (*r).to_owned()).collect());
        roles.into_iter().filter(|r| r != "agent").collect()
    }

    pub fn may_approve(&self, tool: &str, role: &str) -> bool {
        role != "agent" && self.approvers(tool).iter().any(|r| r == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{CHANGE_SET_POINT, CREATE_WORK_ORDER, QUERY_KPIS, find};

    fn tool(name: &str) -> ToolSpec {
        find(name).expect("a tool")
    }

    #[test]
    fn by_default_reading_runs_and_acting_waits_for_a_person() {
        let p = Policy::default();
        for role in ROLES {
            assert_eq!(
                p.judge(&tool(QUERY_KPIS), role, ChosenBy::Model, 0.0),
                Verdict::Run
            );
        }
        for role in ["operator", "engineer", "admin", "agent"] {
            for by in [ChosenBy::Person, ChosenBy::Model, ChosenBy::Planner] {
                assert!(matches!(
                    p.judge(&tool(CREATE_WORK_ORDER), role, by, 0.0),
                    Verdict::Queue { .. }
                ));
            }
        }
        assert!(matches!(
            p.judge(&tool(CHANGE_SET_POINT), "viewer", ChosenBy::Person, 0.0),
            Verdict::Refuse(_)
        ));
        assert!(p.may_approve(CREATE_WORK_ORDER, "operator"));
        assert!(!p.may_approve(CREATE_WORK_ORDER, "agent"));
        assert!(!p.may_approve(CREATE_WORK_ORDER, "viewer"));
    }

    #[test]
    fn auto_rules_apply_per_role_bound_and_chooser() {
        let p = Policy::from_toml(
            r#"
            [tools.change_set_point]
            auto_for = ["engineer"]
            max_auto_change = 0.05
            approvers = ["engineer", "admin"]
            "#,
        )
        .expect("valid");
        let sp = tool(CHANGE_SET_POINT);
        assert_eq!(
            p.judge(&sp, "engineer", ChosenBy::Person, 0.04),
            Verdict::Run
        );
        assert!(matches!(
            p.judge(&sp, "engineer", ChosenBy::Person, 0.06),
            Verdict::Queue { .. }
        ));
        // A model's choice is not the engineer's: it waits unless `agent` is listed too.
        assert!(matches!(
            p.judge(&sp, "engineer", ChosenBy::Model, 0.01),
            Verdict::Queue { .. }
        ));
        assert!(matches!(
            p.judge(&sp, "operator", ChosenBy::Person, 0.01),
            Verdict::Queue { .. }
        ));
        assert!(!p.may_approve(CHANGE_SET_POINT, "operator"));
        assert!(p.may_approve(CHANGE_SET_POINT, "engineer"));
    }

    #[test]
    fn a_policy_naming_unknown_tools_or_roles_or_agent_approvers_is_refused() {
        let e = Policy::from_toml("[tools.format_disk]\nauto_for = []").expect_err("no such tool");
        assert!(e.to_string().contains("format_disk"), "{e}");
        let e = Policy::from_toml("[tools.create_work_order]\nauto_for = [\"robot\"]")
            .expect_err("no such role");
        assert!(
            e.to_string().contains("robot") && e.to_string().contains("auto_for"),
            "{e}"
        );
        let e = Policy::from_toml("[tools.create_work_order]\napprovers = [\"agent\"]")
            .expect_err("agent approves");
        assert!(matches!(e, PolicyError::AgentApprover(_)));
        let e = Policy::from_toml("[tools.change_set_point]\nmax_auto_change = 2.0")
            .expect_err("bound");
        assert!(matches!(e, PolicyError::BadBound(_)));
        assert!(matches!(
            Policy::from_toml("max_steps = 0"),
            Err(PolicyError::BadSteps)
        ));
        assert!(matches!(
            Policy::from_toml("max_steps = \"x\""),
            Err(PolicyError::Parse(_))
        ));
    }
}
