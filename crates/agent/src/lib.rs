//! The agent platform: people, language models and MCP clients work on the plant through one
//! typed tool registry. This crate owns the registry's definitions ([`tools`]), the approval
//! policy ([`policy`]), the runtime that answers requests with a model over the
//! OpenAI-compatible API ([`provider`]) or with the offline planner ([`planner`]), the manuals
//! index ([`manuals`]), the MCP server ([`mcp`]) and the fine-tuning export ([`export`]).
//!
//! It must never let an acting tool run without passing the policy — whichever path the call
//! came by — and never take a tool's output for an instruction. It does not implement the
//! plant's tools itself: the host (the server, over its live plant and store) does, behind
//! [`tools::PlantTools`].

pub mod export;
pub mod manuals;
pub mod mcp;
pub mod planner;
pub mod policy;
pub mod provider;
pub mod runtime;
pub mod tools;

pub use runtime::{Agent, AgentError, Answer, AnswerOutcome, Caller, Clock, Step, ToolOutcome};
