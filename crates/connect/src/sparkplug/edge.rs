//! The edge node's side: births with aliases, data by alias, deaths, `seq` and `bdSeq`, as a
//! real Sparkplug edge node (or the twin acting as one) publishes them.

use super::proto::Payload;
use super::proto::payload::Metric;
use super::value::{DataType, set_metric_value};
use super::{MessageType, REBIRTH_METRIC, Topic};
use crate::Value;
use prost::Message as _;
use std::collections::HashMap;

/// One MQTT publication: Sparkplug messages go at QoS 0 or 1 and are never retained.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct EdgeNode {
    group: String,
    node: String,
    bd_seq: u64,
    /// The `seq` of the next message.
    seq: u8,
    aliases: HashMap<(Option<String>, String), u64>,
    next_alias: u64,
}

impl EdgeNode {
    /// `bd_seq` identifies this MQTT session: increment it (modulo 256) on every reconnect.
    pub fn new(group: &str, node: &str, bd_seq: u64) -> EdgeNode {
        EdgeNode {
            group: group.to_owned(),
            node: node.to_owned(),
            bd_seq,
            seq: 0,
            aliases: HashMap::new(),
            next_alias: 1,
        }
    }

    fn topic(&self, kind: MessageType, device: Option<&str>) -> String {
        Topic {
            group: self.group.clone(),
            kind,
            node: self.node.clone(),
            device: device.map(str::to_owned),
        }
        .to_string()
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        u64::from(seq)
    }

    fn metric(name: Option<&str>, alias: Option<u64>, now_ms: u64, value: &Value) -> Metric {
        let mut m = Metric {
            name: name.map(str::to_owned),
            alias,
            timestamp: Some(now_ms),
            datatype: Some(DataType::of(value) as u32),
            ..Default::default()
        };
        set_metric_value(&mut m, value);
        m
    }

    /// The NDEATH to register as the MQTT will before connecting (it has no `seq`).
    pub fn death(&self) -> Message {
        let payload = Payload {
            metrics: vec![Self::metric(
                Some("bdSeq"),
                None,
                0,
                &Value::UInt(self.bd_seq),
            )],
            ..Default::default()
        };
        Message {
            topic: self.topic(MessageType::NDeath, None),
            payload: payload.encode_to_vec(),
        }
    }

    /// The NBIRTH: `seq` restarts at 0, aliases are (re)assigned; after a rebirth request,
    /// publish it again followed by every device's birth.
    pub fn birth(&mut self, now_ms: u64, metrics: &[(&str, Value)]) -> Message {
        self.seq = 0;
        self.aliases.clear();
        self.next_alias = 1;
        let mut out = vec![
            Self::metric(Some("bdSeq"), None, now_ms, &Value::UInt(self.bd_seq)),
            Self::metric(Some(REBIRTH_METRIC), None, now_ms, &Value::Bool(false)),
        ];
        out.extend(self.born(None, now_ms, metrics));
        self.publish(MessageType::NBirth, None, now_ms, out)
    }

    pub fn device_birth(
        &mut self,
        device: &str,
        now_ms: u64,
        metrics: &[(&str, Value)],
    ) -> Message {
        let out = self.born(Some(device), now_ms, metrics);
        self.publish(MessageType::DBirth, Some(device), now_ms, out)
    }

    pub fn device_death(&mut self, device: &str, now_ms: u64) -> Message {
        self.publish(MessageType::DDeath, Some(device), now_ms, Vec::new())
    }

    /// NDATA (device `None`) or DDATA: metrics born earlier go by alias alone.
    pub fn data(
        &mut self,
        device: Option<&str>,
        now_ms: u64,
        metrics: &[(&str, Value)],
    ) -> Message {
        let out = metrics
            .iter()
            .map(|(name, value)| {
                let key = (device.map(str::to_owned), (*name).to_owned());
                match self.aliases.get(&key) {
                    Some(&alias) => {
                        let mut m = Self::metric(None, Some(alias), now_ms, value);
                        // The type is known from the birth; leaving it out saves bytes.
                        m.datatype = None;
                        m
                    }
                    None => Self::metric(Some(name), None, now_ms, value),
                }
            })
            .collect();
        let kind = if device.is_some() {
            MessageType::DData
        } else {
            MessageType::NData
        };
        self.publish(kind, device, now_ms, out)
    }

    fn born(
        &mut self,
        device: Option<&str>,
        now_ms: u64,
        metrics: &[(&str, Value)],
    ) -> Vec<Metric> {
        metrics
            .iter()
            .map(|(name, value)| {
                let alias = self.next_alias;
                self.next_alias += 1;
                self.aliases
                    .insert((device.map(str::to_owned), (*name).to_owned()), alias);
                Self::metric(Some(name), Some(alias), now_ms, value)
            })
            .collect()
    }

    fn publish(
        &mut self,
        kind: MessageType,
        device: Option<&str>,
        now_ms: u64,
        metrics: Vec<Metric>,
    ) -> Message {
        let payload = Payload {
            timestamp: Some(now_ms),
            metrics,
            seq: Some(self.next_seq()),
            ..Default::default()
        };
        Message {
            topic: self.topic(kind, device),
            payload: payload.encode_to_vec(),
        }
    }
}
