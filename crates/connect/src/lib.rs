//! connect: the protocol adapters between plants and the platform — Sparkplug B 3.0 and plain
//! JSON over MQTT, and the plant contract's envelope for events, commands and acknowledgements —
//! as pure codecs and session state machines: bytes and topics in, typed
//! [`Point`]s or a [`Quarantine`] reason out, and the messages an edge node or a host sends.
//!
//! It must never panic or give up on input from the wire: every malformed, unknown or
//! out-of-sequence payload becomes a [`Reason`] that the caller quarantines and counts, and the
//! next message is read as usual. It does no I/O itself, so every rule is testable without a
//! broker; the MQTT transports build on top of it.

#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod envelope;
pub mod json;
pub mod mqtt;
#[cfg(feature = "opcua")]
pub mod opcua;
mod point;
mod quarantine;
pub mod sparkplug;

pub use point::{Point, SeriesName, Value};
pub use quarantine::{Quarantine, Reason};

/// Payloads larger than this are refused before decoding (a gateway bug, not telemetry).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
