//! The async host that runs a plant — today the in-process twin — under the coordinator: the
//! twin on a blocking thread paced against an injected clock, its events, telemetry and the
//! skills' decisions written to the store (directly or through the broker and the ingest path),
//! the Sparkplug B edge node, OPC UA ingest and serving, and the `server::live::Snapshot` the
//! web UI reads. It never parses command lines, never prints to a terminal and never builds the
//! async runtime it runs on (the CLI does all three), and it never decides: skills and the
//! coordinator do, this crate only carries their decisions to the plant and the ledger.

pub mod clock;
pub mod feed;
pub mod ingest;
pub mod ladder;
pub mod live;
pub mod lockstep;
#[cfg(feature = "opcua")]
pub mod opcua;
#[cfg(feature = "opcua")]
pub mod opcua_plant;
pub mod paced;
pub mod publish;
pub mod record;
pub mod run;
mod scope;
mod view;

pub use clock::Clock;
pub use run::{Progress, RunError, RunSpec, simulate};
