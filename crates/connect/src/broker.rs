//! An MQTT broker in the process (rumqttd), so the whole path twin → MQTT → ingest → store runs
//! with no service installed. It listens on a local TCP port like any broker, so the twin and a
//! plant's gateways use the same client code with it as with Mosquitto.
//!
//! Ingest in the same process takes the stream through one of rumqttd's in-process links
//! instead of a TCP connection ([`LocalLinks`], carried by the broker's [`BrokerAddress`]): no
//! encoding, socket or second decode, and no cap of 100 unacknowledged messages per subscriber,
//! which held a commit to 10,000 points. The link subscribes at QoS 0: acknowledging to a broker
//! whose memory dies with ingest's would protect nothing, so nothing is lost that QoS 1 kept.
//!
//! rumqttd keeps what it routes in an in-memory commit log per subscription filter; the log is
//! capped (`log_bytes`), so its memory is bounded. A subscriber that falls further behind than
//! the log holds loses the oldest messages, which is why the publishers that matter (the twin)
//! are paced by their broker acknowledgements and ingest keeps up.

use crate::mqtt::{BrokerAddress, MqttError};
use rumqttd::local::{LinkRx, LinkTx};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the embedded broker is sized.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The most memory the broker's message log may take per subscription filter.
    pub log_bytes: usize,
    pub max_connections: usize,
    /// Relay every connection with Nagle's algorithm off on both sides. rumqttd leaves it on,
    /// so a reply of several small packets (a lockstep answer: its commands, then `answered`)
    /// waits ~40 ms for the peer's delayed acknowledgement; the relay acknowledges at once.
    /// Off by default: a bulk stream (ingest) gains nothing and pays the copy.
    pub low_latency: bool,
    /// In-process links for ingest in this process. rumqttd makes them only before it starts,
    /// so they are made up front; each serves one ingest at a time and is reused after it.
    pub local_links: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            log_bytes: 256 * 1024 * 1024,
            max_connections: 1000,
            low_latency: false,
            local_links: 2,
        }
    }
}

/// A running embedded broker. It lives as long as the process: rumqttd has no shutdown.
#[derive(Debug)]
pub struct EmbeddedBroker {
    address: BrokerAddress,
}

impl EmbeddedBroker {
    /// Starts the broker on its own threads and waits until it accepts connections.
    pub fn start(options: &EmbeddedOptions) -> Result<EmbeddedBroker, MqttError> {
        // With the relay, rumqttd listens on a port of its own and the relay on the one asked.
        let public = options.low_latency.then_some(options.listen);
        let options = &EmbeddedOptions {
            listen: if options.low_latency {
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            } else {
                options.listen
            },
            ..options.clone()
        };
        let listen = if options.listen.port() == 0 {
            // rumqttd cannot report the port it bound, so find a free one first.
            let probe = TcpListener::bind(options.listen)
                .map_err(|e| MqttError::Connection(format!("no free local port: {e}")))?;
            probe
                .local_addr()
                .map_err(|e| MqttError::Connection(format!("no free local port: {e}")))?
        } else {
            options.listen
        };
        // Segments of 1/8 of the log: the broker drops the oldest segment when the log is full.
        let segments = 8;
        let segment_bytes = (options.log_bytes / segments).max(1024 * 1024);
        let router = rumqttd::RouterConfig {
            max_connections: options.max_connections,
            max_outgoing_packet_count: 1000,
            max_segment_size: segment_bytes,
            max_segment_count: segments,
            ..Default::default()
        };
        let server = rumqttd::ServerSettings {
            name: "aifactory".to_owned(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: rumqttd::ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: crate::MAX_PAYLOAD_BYTES + 4096,
                max_inflight_count: 1000,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let config = rumqttd::Config {
            id: 0,
            router,
            v4: Some(HashMap::from([("aifactory".to_owned(), server)])),
            ..Default::default()
        };
        // The router runs on its own thread from `new`; links connect to it before `start`.
        let mut broker = rumqttd::Broker::new(config);
        let links = (0..options.local_links)
            .map(|n| {
                broker
                    .link(&format!("aifactory-in-process-{n}"))
                    .map(|(tx, rx)| LocalLink { tx, rx })
                    .map_err(|e| {
                        MqttError::Connection(format!("the embedded broker's in-process link: {e}"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        std::thread::Builder::new()
            .name("mqtt-broker".to_owned())
            .spawn(move || {
                // Only returns if every listener failed; callers find out by not connecting.
                let _ = broker.start();
            })
            .map_err(|e| MqttError::Connection(format!("starting the embedded broker: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(MqttError::Connection(format!(
                    "the embedded broker did not start listening on {listen} within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let listen = match public {
            Some(public) => relay(public, listen)?,
            None => listen,
        };
        Ok(EmbeddedBroker {
            address: BrokerAddress {
                host: listen.ip().to_string(),
                port: listen.port(),
                in_process: (!links.is_empty()).then(|| LocalLinks {
                    free: Arc::new(Mutex::new(links)),
                }),
            },
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> &BrokerAddress {
        &self.address
    }
}

/// The embedded broker's in-process links not in use. Cloned with the broker's address; ingest
/// takes one for its run and gives it back at the end.
#[derive(Clone)]
pub struct LocalLinks {
    free: Arc<Mutex<Vec<LocalLink>>>,
}

impl LocalLinks {
    /// A free link, if any (else ingest connects over TCP like any client).
    pub(crate) fn take(&self) -> Option<LocalLink> {
        self.free.lock().ok()?.pop()
    }

    /// Links not in use now.
    pub fn free(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }

    pub(crate) fn give_back(&self, link: LocalLink) {
        if let Ok(mut free) = self.free.lock() {
            free.push(link);
        }
    }
}

impl std::fmt::Debug for LocalLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalLinks({} free)", self.free())
    }
}

impl PartialEq for LocalLinks {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.free, &other.free)
    }
}

impl Eq for LocalLinks {}

/// One in-process connection to the router: `tx` publishes and subscribes, `rx` receives.
pub(crate) struct LocalLink {
    pub(crate) tx: LinkTx,
    pub(crate) rx: LinkRx,
}

/// Relays connections on `public` to the broker on `upstream` with Nagle's algorithm off on
/// both sides and every read from the broker acknowledged at once; answers the address bound.
fn relay(public: SocketAddr, upstream: SocketAddr) -> Result<SocketAddr, MqttError> {
    let listener = TcpListener::bind(public).map_err(|e| {
        MqttError::Connection(format!("binding the broker's relay on {public}: {e}"))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| MqttError::Connection(format!("the broker's relay: {e}")))?;
    std::thread::Builder::new()
        .name("mqtt-relay".to_owned())
        .spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(broker) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = broker.set_nodelay(true);
                let (Ok(client_in), Ok(broker_in)) = (client.try_clone(), broker.try_clone())
                else {
                    continue;
                };
                let _ = std::thread::Builder::new()
                    .name("mqtt-relay-up".to_owned())
                    .spawn(move || pipe(client_in, broker, false));
                let _ = std::thread::Builder::new()
                    .name("mqtt-relay-down".to_owned())
                    .spawn(move || pipe(broker_in, client, true));
            }
        })
        .map_err(|e| MqttError::Connection(format!("starting the broker's relay: {e}")))?;
    Ok(bound)
}

/// Copies `from` to `to` until either closes; `quick` acknowledges each read at once.
fn pipe(mut from: TcpStream, mut to: TcpStream, quick: bool) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if quick {
            // Linux leaves quick-ack mode by itself: set it again after every read.
            let _ = socket2::SockRef::from(&from).set_tcp_quickack(true);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}
