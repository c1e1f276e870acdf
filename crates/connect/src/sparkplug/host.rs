//! The host application's side of Sparkplug: which edge nodes and devices are online, their
//! metric aliases, and the sequence numbers that reveal lost messages.
//!
//! Rules (specification 3.0, chapter 6 and 7): a node's NBIRTH starts a session (its `bdSeq`
//! metric identifies it; `seq` restarts); every later message from the node carries the next
//! `seq` modulo 256; DATA metrics may name themselves by the alias their birth gave them; an
//! NDEATH ends the session only if its `bdSeq` matches (an older will is stale). A gap in `seq`,
//! an unknown alias or data before a birth make the host ask for a rebirth.

use super::proto::Payload;
use super::proto::payload::Metric;
use super::value::{DataType, metric_value};
use super::{MessageType, Topic, decode_payload};
use crate::quarantine::check_timestamp;
use crate::{Point, Reason, SeriesName, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A message the session took.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accepted {
    pub points: Vec<Point>,
    /// Metrics with no time-series value (explicit nulls, data sets, templates, arrays).
    pub skipped: usize,
    /// `seq` jumped from what was expected: the message is good, but earlier ones were lost, so
    /// the node should be asked for a rebirth.
    pub gap: Option<(u8, u8)>,
}

impl Accepted {
    pub fn wants_rebirth(&self) -> bool {
        self.gap.is_some()
    }
}

/// A message the session refused; `rebirth` when the node should be asked to start over.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub reason: Reason,
    pub rebirth: bool,
}

impl From<Reason> for Rejected {
    fn from(reason: Reason) -> Rejected {
        Rejected {
            reason,
            rebirth: false,
        }
    }
}

#[derive(Debug, Clone)]
struct MetricDef {
    device: Option<String>,
    name: Arc<str>,
    datatype: DataType,
}

/// What a birth declared for the node's own metrics or one device's: each metric's type, and
/// the names its series share — made once here, so a reading costs no string copies.
#[derive(Debug, Clone)]
struct Born {
    site: Arc<str>,
    node: Arc<str>,
    /// Empty for the node's own metrics.
    device: Arc<str>,
    types: HashMap<Arc<str>, DataType>,
}

impl Born {
    fn series(&self, metric: &Arc<str>) -> SeriesName {
        SeriesName {
            site: Arc::clone(&self.site),
            node: Arc::clone(&self.node),
            device: Arc::clone(&self.device),
            metric: Arc::clone(metric),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct NodeState {
    online: bool,
    bd_seq: u64,
    last_seq: u8,
    aliases: HashMap<u64, MetricDef>,
    /// What the births declared, for the node (`None`) and for each device.
    by_name: HashMap<Option<String>, Born>,
    devices_online: HashMap<String, bool>,
}

/// Sessions of every edge node seen, keyed by (group, node).
#[derive(Debug, Default)]
pub struct HostSession {
    nodes: HashMap<(String, String), NodeState>,
}

impl HostSession {
    pub fn new() -> HostSession {
        HostSession::default()
    }

    /// Whether a node is online (born and not dead).
    pub fn is_online(&self, group: &str, node: &str) -> bool {
        self.nodes
            .get(&(group.to_owned(), node.to_owned()))
            .is_some_and(|n| n.online)
    }

    /// Parses, decodes and applies one MQTT message.
    pub fn handle(&mut self, topic: &str, bytes: &[u8]) -> Result<Accepted, Rejected> {
        let topic = Topic::parse(topic)?;
        let payload = decode_payload(bytes)?;
        self.accept(&topic, &payload)
    }

    /// Applies one decoded message to the session.
    pub fn accept(&mut self, topic: &Topic, payload: &Payload) -> Result<Accepted, Rejected> {
        let label = match &topic.device {
            Some(d) => format!("{} {}/{}/{d}", topic.kind.as_str(), topic.group, topic.node),
            None => format!("{} {}/{}", topic.kind.as_str(), topic.group, topic.node),
        };
        let key = (topic.group.clone(), topic.node.clone());
        match topic.kind {
            // Commands go to the edge; a host reading them has nothing to store.
            MessageType::NCmd | MessageType::DCmd => Ok(Accepted::default()),
            MessageType::NDeath => {
                let bd_seq = bd_seq_of(payload).ok_or_else(|| Reason::MissingBdSeq {
                    message: label.clone(),
                })?;
                if let Some(node) = self.nodes.get_mut(&key)
                    && node.online
                    && node.bd_seq == bd_seq
                {
                    node.online = false;
                    node.devices_online.values_mut().for_each(|v| *v = false);
                }
                Ok(Accepted::default())
            }
            MessageType::NBirth => {
                let seq = seq_of(payload, &label)?;
                let bd_seq = bd_seq_of(payload).ok_or_else(|| Reason::MissingBdSeq {
                    message: label.clone(),
                })?;
                let mut node = NodeState {
                    online: true,
                    bd_seq,
                    last_seq: seq,
                    ..NodeState::default()
                };
                let accepted = register_and_read(&mut node, topic, payload, &label)?;
                self.nodes.insert(key, node);
                Ok(accepted)
            }
            MessageType::DBirth | MessageType::DDeath | MessageType::NData | MessageType::DData => {
                let seq = seq_of(payload, &label)?;
                let Some(node) = self.nodes.get_mut(&key).filter(|n| n.online) else {
                    return Err(Rejected {
                        reason: Reason::DataBeforeBirth {
                            message: label,
                            node: format!("{}/{}", topic.group, topic.node),
                        },
                        rebirth: true,
                    });
                };
                let expected = node.last_seq.wrapping_add(1);
                // The same seq again is a redelivery (QoS 1): the store drops its duplicates.
                let gap = (seq != expected && seq != node.last_seq).then_some((expected, seq));
                if seq != node.last_seq {
                    node.last_seq = seq;
                }
                let device = topic.device.clone();
                let mut accepted = match topic.kind {
                    MessageType::DBirth => {
                        node.by_name.remove(&device);
                        node.aliases.retain(|_, d| d.device != device);
                        if let Some(d) = &device {
                            node.devices_online.insert(d.clone(), true);
                        }
                        register_and_read(node, topic, payload, &label)?
                    }
                    MessageType::DDeath => {
                        if let Some(d) = &device {
                            node.devices_online.insert(d.clone(), false);
                        }
                        Accepted::default()
                    }
                    _ => {
                        if let Some(d) = &device
                            && node.devices_online.get(d) != Some(&true)
                        {
                            return Err(Rejected {
                                reason: Reason::DataBeforeBirth {
                                    message: label,
                                    node: format!("{}/{}/{d}", topic.group, topic.node),
                                },
                                rebirth: true,
                            });
                        }
                        read_data(node, topic, payload, &label)?
                    }
                };
                accepted.gap = gap;
                Ok(accepted)
            }
        }
    }
}

fn seq_of(payload: &Payload, label: &str) -> Result<u8, Reason> {
    let seq = payload.seq.ok_or_else(|| Reason::MissingSeq {
        message: label.to_owned(),
    })?;
    u8::try_from(seq).map_err(|_| Reason::SeqOutOfRange {
        message: label.to_owned(),
        seq,
    })
}

fn bd_seq_of(payload: &Payload) -> Option<u64> {
    use super::proto::payload::metric::Value as Wire;
    payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
        .and_then(|m| match m.value {
            Some(Wire::LongValue(v)) => Some(v),
            Some(Wire::IntValue(v)) => Some(u64::from(v)),
            _ => None,
        })
}

fn timestamp(payload: &Payload, metric: &Metric, label: &str, index: usize) -> Result<i64, Reason> {
    let ms = metric
        .timestamp
        .or(payload.timestamp)
        .ok_or_else(|| Reason::MissingTimestamp {
            message: label.to_owned(),
            index,
            metric: metric.name.clone().unwrap_or_default(),
        })?;
    check_timestamp(
        &format!("{label}: metric {index} timestamp"),
        i64::try_from(ms).unwrap_or(i64::MAX),
    )
}

fn point(
    series: SeriesName,
    payload: &Payload,
    metric: &Metric,
    value: Value,
    label: &str,
    index: usize,
) -> Result<Point, Reason> {
    Ok(Point {
        series,
        timestamp_ms: timestamp(payload, metric, label, index)?,
        value,
        seq: payload.seq,
    })
}

/// A birth: every metric must have a name and a type; aliases are recorded; values are read.
fn register_and_read(
    node: &mut NodeState,
    topic: &Topic,
    payload: &Payload,
    label: &str,
) -> Result<Accepted, Reason> {
    let device = topic.device.clone();
    let mut born = Born {
        site: topic.group.as_str().into(),
        node: topic.node.as_str().into(),
        device: topic.device.as_deref().unwrap_or_default().into(),
        types: HashMap::with_capacity(payload.metrics.len()),
    };
    let mut accepted = Accepted::default();
    let mut new_aliases: Vec<(u64, MetricDef)> = Vec::new();
    for (index, metric) in payload.metrics.iter().enumerate() {
        let Some(name) = metric.name.as_deref() else {
            return Err(Reason::MetricWithoutName {
                message: label.to_owned(),
                index,
            });
        };
        let name: Arc<str> = Arc::from(name);
        let datatype = DataType::from_code(metric.datatype.unwrap_or(0));
        if let Some(alias) = metric.alias {
            let clash = node
                .aliases
                .get(&alias)
                .map(|d| d.name.to_string())
                .or_else(|| {
                    new_aliases
                        .iter()
                        .find(|(a, _)| *a == alias)
                        .map(|(_, d)| d.name.to_string())
                });
            if let Some(first) = clash {
                return Err(Reason::DuplicateAlias {
                    message: label.to_owned(),
                    alias,
                    first,
                    second: name.to_string(),
                });
            }
            new_aliases.push((
                alias,
                MetricDef {
                    device: device.clone(),
                    name: name.clone(),
                    datatype,
                },
            ));
        }
        born.types.insert(Arc::clone(&name), datatype);
        if topic.kind == MessageType::NBirth && &*name == "bdSeq" {
            continue;
        }
        match metric_value(metric, datatype) {
            Ok(Some(value)) => {
                accepted.points.push(point(
                    born.series(&name),
                    payload,
                    metric,
                    value,
                    label,
                    index,
                )?);
            }
            Ok(None) => accepted.skipped += 1,
            Err(carried) => {
                return Err(Reason::TypeMismatch {
                    message: label.to_owned(),
                    index,
                    metric: name.to_string(),
                    datatype: format!("{datatype:?}"),
                    carried,
                });
            }
        }
    }
    node.aliases.extend(new_aliases);
    node.by_name.insert(device, born);
    Ok(accepted)
}

/// NDATA / DDATA: each metric by alias or name, as declared in the birth.
fn read_data(
    node: &NodeState,
    topic: &Topic,
    payload: &Payload,
    label: &str,
) -> Result<Accepted, Rejected> {
    let device = &topic.device;
    let born = node.by_name.get(device);
    let mut accepted = Accepted::default();
    accepted.points.reserve(payload.metrics.len());
    for (index, metric) in payload.metrics.iter().enumerate() {
        let (born, name, born_type) = match (&metric.name, metric.alias) {
            (Some(name), _) => {
                let Some((born, (name, &t))) =
                    born.and_then(|b| Some((b, b.types.get_key_value(name.as_str())?)))
                else {
                    return Err(Rejected {
                        reason: Reason::UnknownMetric {
                            message: label.to_owned(),
                            index,
                            metric: name.clone(),
                        },
                        rebirth: true,
                    });
                };
                (born, name, t)
            }
            (None, Some(alias)) => match (born, node.aliases.get(&alias)) {
                (Some(born), Some(def)) if &def.device == device => (born, &def.name, def.datatype),
                _ => {
                    return Err(Rejected {
                        reason: Reason::UnknownAlias {
                            message: label.to_owned(),
                            index,
                            alias,
                        },
                        rebirth: true,
                    });
                }
            },
            (None, None) => {
                return Err(Reason::MetricWithoutName {
                    message: label.to_owned(),
                    index,
                }
                .into());
            }
        };
        let datatype = metric.datatype.map_or(born_type, DataType::from_code);
        match metric_value(metric, datatype) {
            Ok(Some(value)) => accepted.points.push(point(
                born.series(name),
                payload,
                metric,
                value,
                label,
                index,
            )?),
            Ok(None) => accepted.skipped += 1,
            Err(carried) => {
                return Err(Reason::TypeMismatch {
                    message: label.to_owned(),
                    index,
                    metric: name.to_string(),
                    datatype: format!("{datatype:?}"),
                    carried,
                }
                .into());
            }
        }
    }
    Ok(accepted)
}
