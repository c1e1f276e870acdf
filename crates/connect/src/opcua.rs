//! OPC UA on async-opcua: a server that presents machines as an address space — an object per
//! machine under Objects, a Double variable per signal, a `state` string and writable Double
//! set-points — for the twin to serve, and a client connector that browses, subscribes to
//! monitored items and writes, for plants whose machines speak OPC UA.
//!
//! Security policy None with anonymous users: for a plant network behind its firewall and for
//! tests; signed and encrypted endpoints need certificates and are the next step. Neither side
//! needs certificate files; each keeps its (empty) PKI folder in the system's temporary folder.

use crate::{Point, SeriesName, Value};
use opcua::client::{ClientBuilder, DataChangeCallback, IdentityToken, MonitoredItem, Session};
use opcua::crypto::SecurityPolicy;
use opcua::server::address_space::{AddressSpace, ObjectBuilder, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ServerBuilder, ServerHandle};
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataTypeId, DataValue,
    DateTime, MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NodeClass, NodeClassMask, NodeId, NumericRange, ObjectId, ObjectTypeId,
    QualifiedName, ReadValueId, ReferenceTypeId, StatusCode, TimestampsToReturn, UserTokenPolicy,
    VariableTypeId, Variant, WriteValue,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The namespace the twin's machines live in.
pub const NAMESPACE_URI: &str = "urn:aifactory:twin";

/// Milliseconds from the OPC UA epoch (1601-01-01) to the Unix epoch.
const EPOCH_OFFSET_MS: i64 = 11_644_473_600_000;

#[derive(Debug, thiserror::Error)]
pub enum OpcUaError {
    #[error("OPC UA server: {0}")]
    Server(String),
    #[error("OPC UA client: {0}")]
    Client(String),
    #[error("no machine `{machine}` with a variable `{variable}` on this server")]
    UnknownVariable { machine: String, variable: String },
    #[error("writing {node}: the server answered {status}")]
    WriteRefused { node: String, status: String },
    #[error("calling {method}: the server answered {status}")]
    CallRefused { method: String, status: String },
}

/// What the server presents for one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineNodes {
    pub machine: String,
    /// Read-only Double variables (sensor readings).
    pub signals: Vec<String>,
    /// Writable Double variables (set-points), starting at 0.
    pub setpoints: Vec<String>,
}

/// A client's write to a set-point, as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct SetpointWrite {
    pub machine: String,
    pub setpoint: String,
    pub value: f64,
}

fn to_opcua_time(ms: i64) -> DateTime {
    DateTime::from((ms.saturating_add(EPOCH_OFFSET_MS)).saturating_mul(10_000))
}

fn to_unix_ms(t: &DateTime) -> i64 {
    t.ticks() / 10_000 - EPOCH_OFFSET_MS
}

fn node_id(ns: u16, machine: &str, variable: &str) -> NodeId {
    NodeId::new(ns, format!("{machine}.{variable}"))
}

/// A PKI folder of its own for each server and client of the process.
fn temp_pki(role: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("aifactory-opcua-{role}-{}-{n}", std::process::id()))
}

/// The twin's machines as an OPC UA server.
pub struct MachineServer {
    endpoint_url: String,
    handle: ServerHandle,
    nodes: Arc<SimpleNodeManager>,
    ns: u16,
    known: HashSet<(String, String)>,
    task: JoinHandle<Result<(), String>>,
    pki_dir: PathBuf,
}

impl std::fmt::Debug for MachineServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineServer")
            .field("endpoint_url", &self.endpoint_url)
            .field("variables", &self.known.len())
            .finish()
    }
}

/// A machine's object in the address space.
struct Parent<'a> {
    ns: u16,
    object: &'a NodeId,
    machine: &'a str,
}

fn add_variable(
    space: &mut AddressSpace,
    parent: &Parent<'_>,
    variable: &str,
    initial: Variant,
    data_type: DataTypeId,
    writable: bool,
) -> NodeId {
    let (ns, machine) = (parent.ns, parent.object.clone());
    let id = node_id(ns, parent.machine, variable);
    let mut builder = VariableBuilder::new(&id, QualifiedName::new(ns, variable), variable)
        .data_type(data_type)
        .value(initial)
        .component_of(machine)
        .has_type_definition(VariableTypeId::BaseDataVariableType);
    if writable {
        // Sets the user access level too, which writes are checked against.
        builder = builder.writable();
    }
    builder.insert(space);
    id
}

impl MachineServer {
    /// Starts the server on `listen` (port 0 picks a free one) with `machines`; set-point writes
    /// arrive on the returned channel.
    pub async fn start(
        listen: SocketAddr,
        machines: &[MachineNodes],
    ) -> Result<(MachineServer, mpsc::UnboundedReceiver<SetpointWrite>), OpcUaError> {
        let err = |e: String| OpcUaError::Server(e);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| err(format!("listening on {listen}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| err(format!("listening on {listen}: {e}")))?;
        let endpoint_url = format!("opc.tcp://{}:{}/", local.ip(), local.port());
        let pki_dir = temp_pki("server");
        let mut builder = ServerBuilder::new_anonymous("aifactory twin")
            .application_uri("urn:aifactory:twin:server")
            .product_uri("urn:aifactory")
            .host(local.ip().to_string())
            .port(local.port())
            .pki_dir(pki_dir.clone())
            .create_sample_keypair(false)
            .discovery_urls(vec![endpoint_url.clone()])
            .with_node_manager(simple_node_manager(
                NamespaceMetadata {
                    namespace_uri: NAMESPACE_URI.to_owned(),
                    ..Default::default()
                },
                "aifactory",
            ));
        // Let clients ask for every change (sampling interval 0): with a sampling grid the
        // server re-stamps values onto it, and the twin's simulated time would be lost.
        builder.limits_mut().subscriptions.min_sampling_interval_ms = 0.0;
        let (server, handle) = builder.build().map_err(err)?;
        let nodes = handle
            .node_managers()
            .get_of_type::<SimpleNodeManager>()
            .ok_or_else(|| err("the machine node manager is missing".to_owned()))?;
        let ns = handle
            .get_namespace_index(NAMESPACE_URI)
            .ok_or_else(|| err(format!("namespace {NAMESPACE_URI} was not registered")))?;
        let mut known = HashSet::new();
        let mut setpoint_ids = Vec::new();
        {
            // A parking_lot guard: never held across an await.
            let mut space = nodes.address_space().write();
            for m in machines {
                let object = NodeId::new(ns, m.machine.clone());
                ObjectBuilder::new(
                    &object,
                    QualifiedName::new(ns, m.machine.as_str()),
                    m.machine.as_str(),
                )
                .organized_by(ObjectId::ObjectsFolder)
                .has_type_definition(ObjectTypeId::BaseObjectType)
                .insert(&mut *space);
                let parent = Parent {
                    ns,
                    object: &object,
                    machine: &m.machine,
                };
                for s in &m.signals {
                    let zero = Variant::from(0.0f64);
                    add_variable(&mut space, &parent, s, zero, DataTypeId::Double, false);
                    known.insert((m.machine.clone(), s.clone()));
                }
                let idle = Variant::from("idle");
                add_variable(
                    &mut space,
                    &parent,
                    "state",
                    idle,
                    DataTypeId::String,
                    false,
                );
                known.insert((m.machine.clone(), "state".to_owned()));
                for s in &m.setpoints {
                    let zero = Variant::from(0.0f64);
                    let id = add_variable(&mut space, &parent, s, zero, DataTypeId::Double, true);
                    known.insert((m.machine.clone(), s.clone()));
                    setpoint_ids.push((id, m.machine.clone(), s.clone()));
                }
            }
        }
        // The write callback runs under the address space's write lock: it only forwards, and a
        // task stores the value (a callback replaces the server's own storing of it).
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<(NodeId, SetpointWrite)>();
        for (id, machine, setpoint) in &setpoint_ids {
            let raw_tx = raw_tx.clone();
            let (id_owned, machine, setpoint) = (id.clone(), machine.clone(), setpoint.clone());
            nodes.inner().add_write_callback(
                id.clone(),
                move |value: DataValue, _range: &NumericRange| match value
                    .value
                    .as_ref()
                    .and_then(Variant::as_f64)
                {
                    Some(v) if v.is_finite() => {
                        let write = SetpointWrite {
                            machine: machine.clone(),
                            setpoint: setpoint.clone(),
                            value: v,
                        };
                        match raw_tx.send((id_owned.clone(), write)) {
                            Ok(()) => StatusCode::Good,
                            Err(_) => StatusCode::BadShutdown,
                        }
                    }
                    _ => StatusCode::BadTypeMismatch,
                },
            );
        }
        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        {
            let (nodes, handle) = (nodes.clone(), handle.clone());
            tokio::spawn(async move {
                while let Some((id, write)) = raw_rx.recv().await {
                    let _ = nodes.set_value(
                        handle.subscriptions(),
                        &id,
                        None,
                        DataValue::new_now(write.value),
                    );
                    let _ = writes_tx.send(write);
                }
            });
        }
        let task = tokio::spawn(server.run_with(listener));
        Ok((
            MachineServer {
                endpoint_url,
                handle,
                nodes,
                ns,
                known,
                task,
                pki_dir,
            },
            writes_rx,
        ))
    }

    /// `opc.tcp://host:port/`
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// Sets variables of machines at `at_ms` (the source timestamp, e.g. the twin's simulated
    /// time); subscribers are notified.
    pub fn update(&self, at_ms: i64, values: &[(&str, &str, Value)]) -> Result<(), OpcUaError> {
        let time = to_opcua_time(at_ms);
        let mut ids = Vec::with_capacity(values.len());
        for (machine, variable, value) in values {
            if !self
                .known
                .contains(&((*machine).to_owned(), (*variable).to_owned()))
            {
                return Err(OpcUaError::UnknownVariable {
                    machine: (*machine).to_owned(),
                    variable: (*variable).to_owned(),
                });
            }
            let variant = match value {
                Value::Text(t) => Variant::from(t.as_str()),
                other => Variant::from(other.as_f64().unwrap_or(f64::NAN)),
            };
            ids.push((
                node_id(self.ns, machine, variable),
                DataValue::new_at(variant, time),
            ));
        }
        self.nodes
            .set_values(
                self.handle.subscriptions(),
                ids.iter()
                    .map(|(id, dv)| (id, None::<&NumericRange>, dv.clone())),
            )
            .map_err(|s| OpcUaError::Server(format!("setting values: {s}")))
    }

    /// Closes every connection and stops.
    pub async fn shutdown(self) {
        self.handle.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        let _ = std::fs::remove_dir_all(&self.pki_dir);
    }
}

/// One node found by browsing.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowsedNode {
    /// As OPC UA writes it, e.g. `ns=2;s=TURN-01.temperature_c`.
    pub node_id: String,
    pub browse_name: String,
    pub class: String,
    /// The node it was found under (`None` for children of Objects).
    pub parent: Option<String>,
}

/// A value change of a monitored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub node_id: String,
    pub value: Value,
    /// The source timestamp, ms since the Unix epoch (the server's time if none was sent).
    pub at_ms: i64,
}

impl Change {
    /// The change as a point of `series` (see [`NamedVariable::series`]).
    pub fn to_point(&self, series: SeriesName) -> Point {
        Point {
            series,
            timestamp_ms: self.at_ms,
            value: self.value.clone(),
            seq: None,
        }
    }
}

/// A variable by the plant's own names: the machine object it is under and its browse path
/// below that machine — never by NodeId, which changes between server builds.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedVariable {
    pub node_id: String,
    /// The browse name of the machine's object.
    pub machine: String,
    /// The browse path below the machine, joined with `.` (`SpindleSpeed`,
    /// `Monitoring.MachineryItemState`).
    pub name: String,
    /// The variable's own browse name (the path's last element).
    pub leaf: String,
}

impl NamedVariable {
    /// The series it is stored as: device = the machine, metric = the path below it, on edge
    /// node `opcua` of `site`.
    pub fn series(&self, site: &str) -> SeriesName {
        SeriesName::new(site, "opcua", self.machine.as_str(), self.name.as_str())
    }
}

/// A method by the plant's own names, e.g. OPC 40001-3's `JobManagement.JobOrderControl.Start`
/// under a machine: called on the object it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedMethod {
    pub node_id: String,
    /// The object the method is called on (its parent).
    pub object_id: String,
    /// The browse name of the machine's object.
    pub machine: String,
    /// The browse path below the machine, joined with `.`.
    pub name: String,
}

/// The variables among browsed `nodes`, each named by the machine it is under and its path
/// below it. The machine is the outermost ancestor for which `is_machine` holds; a variable
/// under no such object is left out. With `|_| true` every object directly under Objects is a
/// machine.
pub fn named_variables(
    nodes: &[BrowsedNode],
    is_machine: impl Fn(&str) -> bool,
) -> Vec<NamedVariable> {
    named(nodes, NodeClass::Variable, is_machine)
        .into_iter()
        .map(|(node, machine, name)| NamedVariable {
            node_id: node.node_id.clone(),
            machine,
            name,
            leaf: node.browse_name.clone(),
        })
        .collect()
}

/// The methods among browsed `nodes`, named as [`named_variables`] names variables.
pub fn named_methods(nodes: &[BrowsedNode], is_machine: impl Fn(&str) -> bool) -> Vec<NamedMethod> {
    named(nodes, NodeClass::Method, is_machine)
        .into_iter()
        .filter_map(|(node, machine, name)| {
            Some(NamedMethod {
                node_id: node.node_id.clone(),
                object_id: node.parent.clone()?,
                machine,
                name,
            })
        })
        .collect()
}

/// The nodes of `class` under a machine, with the machine's browse name and the path below it.
fn named(
    nodes: &[BrowsedNode],
    class: NodeClass,
    is_machine: impl Fn(&str) -> bool,
) -> Vec<(&BrowsedNode, String, String)> {
    let by_id: HashMap<&str, &BrowsedNode> =
        nodes.iter().map(|n| (n.node_id.as_str(), n)).collect();
    let class = format!("{class:?}");
    let object = format!("{:?}", NodeClass::Object);
    let mut out = Vec::new();
    for node in nodes.iter().filter(|n| n.class == class) {
        // The path from the node up to Objects (guarded against reference loops).
        let mut path = vec![node];
        let mut parent = node.parent.as_deref();
        while let Some(p) = parent {
            let Some(up) = by_id.get(p) else { break };
            if path.len() > 64 || path.iter().any(|n| n.node_id == up.node_id) {
                break;
            }
            path.push(up);
            parent = up.parent.as_deref();
        }
        let Some(at) = path
            .iter()
            .rposition(|n| n.class == object && is_machine(&n.browse_name))
        else {
            continue;
        };
        if at == 0 {
            continue;
        }
        let name = path[..at]
            .iter()
            .rev()
            .map(|n| n.browse_name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        out.push((node, path[at].browse_name.clone(), name));
    }
    out
}

/// A client session with one server.
pub struct Client {
    session: Arc<Session>,
    event_loop: JoinHandle<StatusCode>,
    pki_dir: PathBuf,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn value_of(v: Option<Variant>) -> Option<Value> {
    match v? {
        Variant::Boolean(b) => Some(Value::Bool(b)),
        Variant::String(s) => Some(Value::Text(s.to_string())),
        // OPC 40001-1 states (`CurrentState`) are localized text.
        Variant::LocalizedText(t) => Some(Value::Text(t.text.to_string())),
        other => other.as_f64().map(Value::Float),
    }
}

impl Client {
    /// Connects anonymously with security policy None and waits (up to `timeout`) for the
    /// session.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Client, OpcUaError> {
        let err = |e: String| OpcUaError::Client(format!("{url}: {e}"));
        let pki_dir = temp_pki("client");
        let mut client = ClientBuilder::new()
            .application_name("aifactory")
            .application_uri("urn:aifactory:client")
            .product_uri("urn:aifactory")
            .pki_dir(pki_dir.clone())
            .create_sample_keypair(false)
            .trust_server_certs(true)
            .session_retry_limit(3)
            .client()
            .map_err(|e| err(e.join("; ")))?;
        let (session, event_loop) = client
            .connect_to_matching_endpoint(
                (
                    url,
                    SecurityPolicy::None.to_str(),
                    MessageSecurityMode::None,
                    UserTokenPolicy::anonymous(),
                ),
                IdentityToken::Anonymous,
            )
            .await
            .map_err(|e| err(e.to_string()))?;
        // Nothing connects until the event loop runs.
        let event_loop = event_loop.spawn();
        if tokio::time::timeout(timeout, session.wait_for_connection())
            .await
            .is_err()
        {
            event_loop.abort();
            return Err(err(format!(
                "no session within {} s",
                timeout.as_secs_f64()
            )));
        }
        Ok(Client {
            session,
            event_loop,
            pki_dir,
        })
    }

    /// Every node under Objects (breadth first, hierarchical references, the server's own
    /// diagnostics subtree left out).
    pub async fn browse(&self) -> Result<Vec<BrowsedNode>, OpcUaError> {
        let err = |e: opcua::types::Error| OpcUaError::Client(format!("browsing: {e}"));
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut queue: VecDeque<(NodeId, Option<String>)> =
            VecDeque::from([(NodeId::from(ObjectId::ObjectsFolder), None)]);
        while let Some((node, parent)) = queue.pop_front() {
            if !seen.insert(node.clone()) {
                continue;
            }
            let description = BrowseDescription {
                node_id: node.clone(),
                browse_direction: BrowseDirection::Forward,
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                include_subtypes: true,
                node_class_mask: NodeClassMask::all().bits(),
                result_mask: BrowseResultMask::All as u32,
            };
            let mut next = self
                .session
                .browse(&[description], 1000, None)
                .await
                .map_err(err)?
                .pop();
            let here = parent.as_ref().map(|_| node.to_string());
            while let Some(result) = next {
                for r in result.references.unwrap_or_default() {
                    let id = r.node_id.node_id.clone();
                    if id == ObjectId::Server {
                        continue;
                    }
                    if r.node_id.server_index == 0 {
                        queue.push_back((id.clone(), Some(id.to_string())));
                    }
                    out.push(BrowsedNode {
                        node_id: id.to_string(),
                        browse_name: r.browse_name.name.to_string(),
                        class: format!("{:?}", r.node_class),
                        parent: here.clone(),
                    });
                }
                next = if result.continuation_point.is_null() {
                    None
                } else {
                    self.session
                        .browse_next(false, &[result.continuation_point])
                        .await
                        .map_err(err)?
                        .pop()
                };
            }
        }
        Ok(out)
    }

    /// The variables found by [`Client::browse`].
    pub fn variables(nodes: &[BrowsedNode]) -> Vec<String> {
        nodes
            .iter()
            .filter(|n| n.class == format!("{:?}", NodeClass::Variable))
            .map(|n| n.node_id.clone())
            .collect()
    }

    /// Subscribes to every value change of `node_ids`, published every `interval` (at least
    /// 100 ms) and queued up to 100 per item in between; changes arrive on the returned channel.
    pub async fn subscribe(
        &self,
        node_ids: &[String],
        interval: Duration,
    ) -> Result<mpsc::UnboundedReceiver<Change>, OpcUaError> {
        let err = |e: String| OpcUaError::Client(format!("subscribing: {e}"));
        let ids = node_ids
            .iter()
            .map(|s| {
                s.parse::<NodeId>()
                    .map_err(|e| err(format!("`{s}` is not a node id: {e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let subscription = self
            .session
            .create_subscription(
                interval,
                100,
                10,
                0,
                0,
                true,
                DataChangeCallback::new(move |dv: DataValue, item: &MonitoredItem| {
                    let Some(value) = value_of(dv.value) else {
                        return;
                    };
                    let at = dv
                        .source_timestamp
                        .or(dv.server_timestamp)
                        .map_or(0, |t| to_unix_ms(&t));
                    let _ = tx.send(Change {
                        node_id: item.item_to_monitor().node_id.to_string(),
                        value,
                        at_ms: at,
                    });
                }),
            )
            .await
            .map_err(|e| err(e.to_string()))?;
        let items = ids
            .into_iter()
            .map(|id| {
                MonitoredItemCreateRequest::new(
                    ReadValueId::from(id),
                    MonitoringMode::Reporting,
                    MonitoringParameters {
                        // 0: every change, with its own source timestamp. With a sampling
                        // interval the server re-stamps values onto its sampling grid, which
                        // would replace the plant's (or the twin's simulated) time.
                        sampling_interval: 0.0,
                        queue_size: 100,
                        discard_oldest: true,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let created = self
            .session
            .create_monitored_items(subscription, TimestampsToReturn::Both, items)
            .await
            .map_err(|e| err(e.to_string()))?;
        let refused: HashMap<usize, String> = created
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.result.status_code.is_good())
            .map(|(i, c)| (i, c.result.status_code.to_string()))
            .collect();
        if let Some((i, status)) = refused.iter().next() {
            return Err(err(format!(
                "the server refused to monitor {}: {status}",
                node_ids.get(*i).map_or("?", String::as_str)
            )));
        }
        Ok(rx)
    }

    /// Reads a variable's value now (`None`: no value, or one that is not a number, flag or
    /// text).
    pub async fn read(&self, node: &str) -> Result<Option<Value>, OpcUaError> {
        let id = node
            .parse::<NodeId>()
            .map_err(|e| OpcUaError::Client(format!("`{node}` is not a node id: {e:?}")))?;
        let mut values = self
            .session
            .read(&[ReadValueId::from(id)], TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(|e| OpcUaError::Client(format!("reading {node}: {e}")))?;
        Ok(values.pop().and_then(|dv| value_of(dv.value)))
    }

    /// Writes a Double to a variable (a set-point).
    pub async fn write(&self, node: &str, value: f64) -> Result<(), OpcUaError> {
        let id = node
            .parse::<NodeId>()
            .map_err(|e| OpcUaError::Client(format!("`{node}` is not a node id: {e:?}")))?;
        let results = self
            .session
            .write(&[WriteValue {
                node_id: id,
                attribute_id: AttributeId::Value as u32,
                index_range: NumericRange::None,
                value: DataValue::value_only(value),
            }])
            .await
            .map_err(|e| OpcUaError::Client(format!("writing {node}: {e}")))?;
        match results.first() {
            Some(s) if s.is_good() => Ok(()),
            Some(s) => Err(OpcUaError::WriteRefused {
                node: node.to_owned(),
                status: s.to_string(),
            }),
            None => Err(OpcUaError::WriteRefused {
                node: node.to_owned(),
                status: "no result".to_owned(),
            }),
        }
    }

    /// Calls `method` on `object` (node ids as [`Client::browse`] gives them) with `arguments`
    /// (text as String, floats as Double, integers as Int64/UInt64) and answers its output arguments
    /// (`None` where one is not a number, flag or text); a Bad status is
    /// [`OpcUaError::CallRefused`].
    pub async fn call(
        &self,
        object: &str,
        method: &str,
        arguments: &[Value],
    ) -> Result<Vec<Option<Value>>, OpcUaError> {
        let arguments = arguments
            .iter()
            .map(|a| match a {
                Value::Text(t) => Variant::from(t.as_str()),
                Value::Float(f) => Variant::from(*f),
                Value::Bool(b) => Variant::from(*b),
                Value::Int(i) => Variant::from(*i),
                Value::UInt(u) => Variant::from(*u),
                Value::Bytes(b) => Variant::from(opcua::types::ByteString::from(b.clone())),
            })
            .collect();
        let id = |node: &str| {
            node.parse::<NodeId>()
                .map_err(|e| OpcUaError::Client(format!("`{node}` is not a node id: {e:?}")))
        };
        let request = opcua::types::CallMethodRequest {
            object_id: id(object)?,
            method_id: id(method)?,
            input_arguments: Some(arguments),
        };
        let result = self
            .session
            .call(vec![request])
            .await
            .map_err(|e| OpcUaError::Client(format!("calling {method}: {e}")))?
            .into_iter()
            .next()
            .ok_or_else(|| OpcUaError::CallRefused {
                method: method.to_owned(),
                status: "no result".to_owned(),
            })?;
        if result.status_code.is_bad() {
            return Err(OpcUaError::CallRefused {
                method: method.to_owned(),
                status: result.status_code.to_string(),
            });
        }
        Ok(result
            .output_arguments
            .unwrap_or_default()
            .into_iter()
            .map(|v| value_of(Some(v)))
            .collect())
    }

    pub async fn disconnect(self) {
        let _ = self.session.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.event_loop).await;
        let _ = std::fs::remove_dir_all(&self.pki_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, name: &str, class: NodeClass, parent: Option<&str>) -> BrowsedNode {
        BrowsedNode {
            node_id: id.to_owned(),
            browse_name: name.to_owned(),
            class: format!("{class:?}"),
            parent: parent.map(str::to_owned),
        }
    }

    #[test]
    fn variables_are_named_by_machine_and_browse_path_never_by_node_id() {
        use NodeClass::{Object, Variable};
        // An independent server's layout: numeric NodeIds, a machine in a folder, OPC 40001-1
        // nesting, and an object that is no machine.
        let nodes = [
            node("ns=2;i=1", "Machines", Object, None),
            node("ns=2;i=2", "LATHE-7", Object, Some("ns=2;i=1")),
            node("ns=2;i=3", "SpindleSpeed", Variable, Some("ns=2;i=2")),
            node("ns=2;i=4", "MachineryItemState", Object, Some("ns=2;i=2")),
            node("ns=2;i=5", "CurrentState", Variable, Some("ns=2;i=4")),
            node("ns=2;i=6", "Aliases", Object, None),
            node("ns=2;i=7", "Count", Variable, Some("ns=2;i=6")),
        ];
        let named = named_variables(&nodes, |n| n == "LATHE-7");
        let names: Vec<(&str, &str, &str)> = named
            .iter()
            .map(|v| (v.node_id.as_str(), v.machine.as_str(), v.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("ns=2;i=3", "LATHE-7", "SpindleSpeed"),
                ("ns=2;i=5", "LATHE-7", "MachineryItemState.CurrentState"),
            ]
        );
        assert_eq!(named[1].leaf, "CurrentState");
        let series = named[0].series("site1");
        assert_eq!(
            (&*series.device, &*series.metric),
            ("LATHE-7", "SpindleSpeed")
        );
        // Without a plant file, every object under Objects is a machine.
        let all = named_variables(&nodes, |_| true);
        assert_eq!(all.len(), 3);
        assert_eq!(
            (all[0].machine.as_str(), all[0].name.as_str()),
            ("Machines", "LATHE-7.SpindleSpeed")
        );
        // A reference loop ends the walk instead of hanging it.
        let looped = [
            node("a", "M", Object, Some("b")),
            node("b", "N", Object, Some("a")),
            node("v", "x", Variable, Some("a")),
        ];
        assert_eq!(named_variables(&looped, |n| n == "M").len(), 1);
    }

    #[test]
    fn methods_are_named_by_machine_and_path_and_called_on_their_parent() {
        use NodeClass::{Method, Object, Variable};
        let nodes = [
            node("ns=2;i=1", "MILL-02", Object, None),
            node("ns=2;i=2", "JobManagement", Object, Some("ns=2;i=1")),
            node("ns=2;i=3", "JobOrderControl", Object, Some("ns=2;i=2")),
            node("ns=2;i=4", "Start", Method, Some("ns=2;i=3")),
            node("ns=2;i=5", "Speed", Variable, Some("ns=2;i=1")),
            node("ns=2;i=6", "Reset", Method, None),
        ];
        let methods = named_methods(&nodes, |n| n == "MILL-02");
        assert_eq!(
            methods,
            [NamedMethod {
                node_id: "ns=2;i=4".into(),
                object_id: "ns=2;i=3".into(),
                machine: "MILL-02".into(),
                name: "JobManagement.JobOrderControl.Start".into(),
            }],
            "the variable is no method; a method under no machine is left out"
        );
    }
}
