//! `aifactory serve`: the web UI and the HTTP API over a store, with a plant behind them until
//! Ctrl-C — the live twin running accelerated, or a real plant's feed over MQTT.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, env = "AIFACTORY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The store: a SQLite file or a postgres:// URL [default: <data.dir>/serve.sqlite].
    #[arg(long, env = "AIFACTORY_DB")]
    db: Option<String>,
    /// The administrator's password [default: a random one, printed at start].
    #[arg(long, env = "AIFACTORY_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Plant file for the live twin [default: the built-in reference plant].
    #[arg(long, env = "AIFACTORY_PLANT")]
    plant: Option<PathBuf>,
    /// Twin seconds per real second: 60 runs an hour of the plant in a minute.
    #[arg(long, env = "AIFACTORY_SPEED", default_value_t = 60.0)]
    speed: f64,
    /// Days simulated as fast as possible before going live, so there is history to look at.
    #[arg(long, env = "AIFACTORY_WARM_UP_DAYS", default_value_t = 1.0)]
    warm_up_days: f64,
    /// Seed of the live twin.
    #[arg(long, env = "AIFACTORY_SEED", default_value_t = 1)]
    seed: u64,
    /// Serve the store only, without a live twin (for a store a real plant's ingest fills).
    #[arg(long, env = "AIFACTORY_NO_TWIN", conflicts_with = "plant_feed")]
    no_twin: bool,
    /// Run a real plant instead of the twin: its events, acknowledgements and telemetry come in
    /// through this MQTT broker as docs/PLANT-CONTRACT.md says, and the AI's commands go back
    /// the same way (e.g. mqtt://127.0.0.1:1883). --plant names its machines and products.
    #[arg(
        long,
        env = "AIFACTORY_PLANT_FEED",
        value_name = "URL",
        conflicts_with = "mqtt"
    )]
    plant_feed: Option<String>,
    /// A machine of the plant served over OPC UA (e.g. opc.tcp://10.0.4.21:4840/): its
    /// MachineryItemState and signals are read by browse path (objects named by the plant
    /// file's machine ids), its set-points written and read back, as docs/PLANT-CONTRACT.md
    /// says. Repeat for more servers. Needs --plant-feed: the bridge speaks the contract there.
    #[cfg(feature = "opcua")]
    #[arg(long, value_name = "URL", requires = "plant_feed")]
    plant_opcua: Vec<String>,
    /// What decides, for the twin or a plant feed: 0 the plant's own rules (earliest due date,
    /// fixed-interval service), 1 the AI skills, 2 the skills coordinated on one plan, 3 that
    /// plan as a closed loop (guarded set-points, outcomes measured, models updated online;
    /// on a plant feed it first runs trial batches on the plant's trial line). The tier the
    /// plant *earns* is computed from its ledger (`/api/v1/assessment`), not this setting.
    #[arg(long, env = "AIFACTORY_TIER", default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=3))]
    tier: u8,
    /// Send the twin's telemetry through this MQTT broker as a Sparkplug B edge node, taken in
    /// by ingest, as a plant's would arrive (e.g. mqtt://127.0.0.1:1883); host applications'
    /// DCMDs reach the twin too. Default: straight into the store.
    #[arg(long)]
    mqtt: Option<String>,
    /// The agent's model, policy and manuals (API at /api/v1/agent, MCP at /mcp).
    #[command(flatten)]
    agent: crate::agent::ModelArgs,
}

pub(crate) fn run(config: &crate::config::Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if !(args.speed.is_finite() && args.speed > 0.0 && args.speed <= 100_000.0) {
        anyhow::bail!("--speed must be more than 0 and at most 100000");
    }
    if !(args.warm_up_days.is_finite() && (0.0..=365.0).contains(&args.warm_up_days)) {
        anyhow::bail!("--warm-up-days must be between 0 and 365");
    }
    // Bad model options fail now, not after the twin's warm-up.
    args.agent.model_config()?;
    let mqtt: Option<aifactory_connect::mqtt::BrokerAddress> = match &args.mqtt {
        Some(url) if args.no_twin => {
            anyhow::bail!("--mqtt {url} sends the twin's telemetry; it has no use with --no-twin")
        }
        Some(url) => Some(url.parse().with_context(|| format!("--mqtt {url}"))?),
        None => None,
    };
    let feed: Option<aifactory_connect::mqtt::BrokerAddress> = match &args.plant_feed {
        Some(url) => Some(url.parse().with_context(|| format!("--plant-feed {url}"))?),
        None => None,
    };
    let plant = match args.no_twin {
        true => None,
        false => Some(crate::setup::plant_or_reference(args.plant.as_deref())?),
    };
    let site = plant
        .as_ref()
        .map(|p| p.plant.id.clone())
        .unwrap_or_default();
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| config.data.dir.join("serve.sqlite").display().to_string());
    if !db.starts_with("postgres")
        && let Some(dir) = PathBuf::from(&db)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data folder {}", dir.display()))?;
    }
    if let Some(p) = &args.admin_password
        && p.len() < 8
    {
        anyhow::bail!("--admin-password must be at least 8 characters");
    }
    let runtime = crate::setup::runtime()?;
    runtime.block_on(async move {
        let store = aifactory_store::Store::open(&db)
            .await
            .with_context(|| format!("opening the store {}", crate::setup::shown_location(&db)))?;
        let (accounts, admin_password) = accounts(&store, args.admin_password.as_deref()).await?;
        let commands =
            aifactory_runtime::live::TwinCommands::new(aifactory_twin::CommandInbox::new());
        let (live, twin) = match (plant, feed) {
            (None, _) => (aifactory_server::live::Live::none(), None),
            (Some(plant), Some(broker)) => {
                // The feed subscribes first, so nothing a bridge publishes is missed.
                #[cfg(feature = "opcua")]
                let (bridged, bridge_broker) = (plant.clone(), broker.clone());
                let (connected, log) = connect_feed(&plant, broker, &args).await?;
                #[cfg(feature = "opcua")]
                let bridges = start_bridges(&bridged, &bridge_broker, &args.plant_opcua).await?;
                let (live, feed) = start_feed(&plant, connected, log, &args, &store).await?;
                (
                    live,
                    Some(Running::Feed {
                        feed,
                        #[cfg(feature = "opcua")]
                        bridges,
                    }),
                )
            }
            (Some(plant), None) => {
                let (live, publisher) =
                    aifactory_server::live::Live::new(Some(Arc::new(commands.clone())));
                let spec = aifactory_runtime::live::LiveSpec {
                    plant,
                    seed: args.seed,
                    tier: args.tier,
                    speed: args.speed,
                    warm_up_days: args.warm_up_days,
                    mqtt: mqtt.clone(),
                    clock: aifactory_runtime::Clock::system(),
                };
                let twin = aifactory_runtime::live::start(spec, store.clone(), publisher, commands)
                    .await
                    .context("starting the live twin")?;
                (live, Some(Running::Twin(twin)))
            }
        };
        let store_engine = store.engine();
        let started = std::time::Instant::now();
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let state = aifactory_server::AppState::new(
            store,
            accounts,
            Arc::new(move || started.elapsed()),
            live,
            started_ms,
        );
        args.agent
            .attach(&state, started_ms)
            .context("setting up the agent")?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener.local_addr().unwrap_or(args.listen);
        let shown = crate::setup::shown_location(&db);
        println!("aifactory on http://{address} (store {shown})");
        tracing::info!(
            %address,
            store = %shown,
            engine = store_engine,
            version = env!("AIFACTORY_LONG_VERSION"),
            "serving"
        );
        if let Some(Running::Feed { .. }) = &twin {
            println!(
                "plant feed: {} through {}, coordinator configured for tier {}; publish its events to aifactory/{}/_events (docs/PLANT-CONTRACT.md)",
                args.plant
                    .as_deref()
                    .map_or_else(|| "the reference plant".to_owned(), |p| p.display().to_string()),
                args.plant_feed.as_deref().unwrap_or_default(),
                args.tier,
                site,
            );
        } else if twin.is_some() {
            println!(
                "live twin: {} at {}x real time, after {} day(s) of warm-up, coordinator configured for tier {}",
                args.plant
                    .as_deref()
                    .map_or_else(|| "the reference plant".to_owned(), |p| p.display().to_string()),
                args.speed,
                args.warm_up_days,
                args.tier
            );
        }
        match admin_password {
            AdminPassword::Generated(password) => println!(
                "log in as admin with password {password} (printed once, on first start; --admin-password sets another)"
            ),
            AdminPassword::Given => println!("log in as admin with the password given"),
            AdminPassword::Kept => println!(
                "log in as admin with the password printed at first start (--admin-password resets it)"
            ),
        }
        println!(
            "agent: {} (API /api/v1/agent/ask, MCP at http://{address}/mcp)",
            state.agent().map_or_else(String::new, |a| a.answered_by())
        );
        println!("API: http://{address}/api/v1/openapi.json (log in first); stop with Ctrl-C");
        // Ctrl-C stops the twin first: its feed closes, which ends the live event streams,
        // so the server's graceful shutdown is not held open by them.
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let stopper = tokio::spawn(async move {
            crate::setup::stop_requested().await;
            let reached = match twin {
                Some(running) => Some(running.stop().await),
                None => None,
            };
            let _ = stopped_tx.send(());
            reached
        });
        aifactory_server::serve(listener, aifactory_server::router(state), async {
            let _ = stopped_rx.await;
        })
        .await
        .context("serving HTTP")?;
        tracing::info!("HTTP server stopped");
        if let Some(stopped) = stopper.await.context("the shutdown task failed")? {
            println!("{}", stopped?);
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What runs behind the server.
enum Running {
    Twin(aifactory_runtime::live::LiveTwin),
    Feed {
        feed: aifactory_runtime::feed::PlantFeed,
        /// Machines served over OPC UA, bridged onto the feed's broker.
        #[cfg(feature = "opcua")]
        bridges: Vec<aifactory_runtime::opcua_plant::Bridge>,
    },
}

impl Running {
    /// Stops it and says how far it got.
    async fn stop(self) -> anyhow::Result<String> {
        Ok(match self {
            Running::Twin(twin) => format!(
                "live twin stopped at day {:.2}",
                twin.stop().await.context("stopping the live twin")?.days()
            ),
            Running::Feed {
                feed,
                #[cfg(feature = "opcua")]
                bridges,
            } => {
                #[cfg(feature = "opcua")]
                for bridge in bridges {
                    let r = bridge.stop().await.context("stopping an OPC UA bridge")?;
                    println!(
                        "OPC UA bridge stopped: {} state changes, {} readings, {} commands, acknowledgements {:?}",
                        r.states, r.telemetry, r.commands, r.acks
                    );
                }
                let r = feed.stop().await.context("stopping the plant feed")?;
                format!(
                    "plant feed stopped: {} events ({} refused, {} duplicates), {} telemetry points, {} decisions, {} commands, outcomes {:?}",
                    r.events,
                    r.refused,
                    r.duplicates,
                    r.telemetry_points,
                    r.decisions,
                    r.commands,
                    r.outcomes
                )
            }
        })
    }
}

/// Connects to a real plant's broker, subscribed before anything else starts so nothing the
/// plant says is missed. Tier 3 decides with a placeholder until its trial batches have run.
async fn connect_feed(
    plant: &aifactory_core::Plant,
    broker: aifactory_connect::mqtt::BrokerAddress,
    args: &ServeArgs,
) -> anyhow::Result<(
    aifactory_runtime::feed::Connected,
    aifactory_core::DecisionLog,
)> {
    use aifactory_runtime::feed;
    let log = aifactory_core::DecisionLog::new();
    let first_tier = if args.tier == 3 { 0 } else { args.tier };
    let coordinator = feed::coordinator_for(plant, first_tier, args.seed, &log, None)
        .with_context(|| format!("--tier {}", args.tier))?;
    let spec = feed::FeedSpec {
        plant: plant.clone(),
        broker,
        client_id: format!("aifactory-serve-feed-{}", plant.plant.id),
        policy: coordinator.policy,
        observer: coordinator.observer,
        log: Some(log.clone()),
        tier: args.tier,
        plans_releases: false,
        command_ttl_ms: feed::COMMAND_TTL_MS,
        clock: aifactory_runtime::Clock::system(),
    };
    let connected = feed::connect(spec)
        .await
        .context("connecting the plant feed")?;
    Ok((connected, log))
}

/// Starts the plant feed under the coordinator of `--tier`. Tier 3 first runs trial batches on
/// the plant's own trial line (`trial_batch` commands, docs/PLANT-CONTRACT.md) to tune its
/// set-points; a plant without one is told to run `--tier 2`.
async fn start_feed(
    plant: &aifactory_core::Plant,
    mut connected: aifactory_runtime::feed::Connected,
    log: aifactory_core::DecisionLog,
    args: &ServeArgs,
    store: &aifactory_store::Store,
) -> anyhow::Result<(
    aifactory_server::live::Live,
    aifactory_runtime::feed::PlantFeed,
)> {
    use aifactory_runtime::feed;
    if args.tier == 3 {
        println!(
            "tier 3: running trial batches on the plant's trial line (up to {} s each)…",
            feed::TRIAL_WAIT.as_secs()
        );
        let handle = tokio::runtime::Handle::current();
        // The trials wait on the plant's answers: off the async workers, on this one.
        let built = tokio::task::block_in_place(|| {
            let mut trials = connected.trial_batches(&handle, feed::TRIAL_WAIT);
            feed::coordinator_for(plant, 3, args.seed, &log, Some(&mut trials))
        });
        if let Some(failure) = connected.trial_failure() {
            return Err(anyhow::Error::new(failure)).context(
                "tier 3 tunes set-points on the plant's trial batches; --tier 2 runs the shared plan without them",
            );
        }
        connected.decide_with(built.context("--tier 3")?);
    }
    let (live, publisher) = aifactory_server::live::Live::new(Some(Arc::new(connected.commands())));
    let running = connected
        .run(store.clone(), Some(publisher))
        .await
        .context("starting the plant feed")?;
    Ok((live, running))
}

/// Bridges each OPC UA server's machines onto the plant feed's broker.
#[cfg(feature = "opcua")]
async fn start_bridges(
    plant: &aifactory_core::Plant,
    broker: &aifactory_connect::mqtt::BrokerAddress,
    urls: &[String],
) -> anyhow::Result<Vec<aifactory_runtime::opcua_plant::Bridge>> {
    use aifactory_runtime::opcua_plant::{Bridge, BridgeSpec};
    let mut bridges = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let bridge = Bridge::start(BridgeSpec {
            opcua_url: url.clone(),
            broker: broker.clone(),
            client_id: format!("aifactory-serve-opcua-{}-{i}", plant.plant.id),
            site: plant.plant.id.clone(),
            machines: plant.machines.iter().map(|m| m.id.clone()).collect(),
            source: format!("opcua-{}", i + 1),
            clock: aifactory_runtime::Clock::system(),
        })
        .await
        .with_context(|| format!("--plant-opcua {url}"))?;
        println!(
            "OPC UA: {} from {url} (state, signals, set-points)",
            bridge.report().machines.join(", ")
        );
        bridges.push(bridge);
    }
    Ok(bridges)
}

/// Where the admin's password came from this start.
enum AdminPassword {
    /// New store: a random one, to print once.
    Generated(String),
    Given,
    /// Kept from an earlier start.
    Kept,
}

/// The users and API tokens kept in the store, with the admin set up: on first start with a
/// random password (printed once), or with `--admin-password`, which also resets it later.
async fn accounts(
    store: &aifactory_store::Store,
    admin_password: Option<&str>,
) -> anyhow::Result<(aifactory_server::auth::Accounts, AdminPassword)> {
    use aifactory_server::auth::{Accounts, Role};
    let mut accounts = Accounts::new();
    for user in store.users().await.context("reading the users")? {
        let role = Role::parse(&user.role).with_context(|| {
            format!(
                "the store's user {} has an unknown role `{}`",
                user.name, user.role
            )
        })?;
        accounts.restore_user(&user.name, &user.password_hash, role);
    }
    for token in store.tokens().await.context("reading the API tokens")? {
        accounts.restore_token(&token).map_err(|role| {
            anyhow::anyhow!(
                "token {} of {} has an unknown role `{role}`",
                token.id,
                token.user
            )
        })?;
    }
    let (password, said) = match (admin_password, accounts.stored_user("admin")) {
        (Some(p), _) => (p.to_owned(), AdminPassword::Given),
        (None, Some(_)) => return Ok((accounts, AdminPassword::Kept)),
        (None, None) => {
            let p = aifactory_server::auth::random_secret()[..20].to_owned();
            (p.clone(), AdminPassword::Generated(p))
        }
    };
    accounts
        .add_user("admin", &password, Role::Admin)
        .context("setting up the administrator")?;
    let (password_hash, role) = accounts
        .stored_user("admin")
        .context("the administrator was not set up")?;
    store
        .save_user(&aifactory_store::StoredUser {
            name: "admin".to_owned(),
            password_hash,
            role: role.as_str().to_owned(),
        })
        .await
        .context("saving the administrator")?;
    Ok((accounts, said))
}
