//! `aifactory portal …`: the programme office on PostgreSQL — serve its API, seed a synthetic
//! city, add users, submit a plant's evidence bundle — and `aifactory bench portal`.

use crate::setup::runtime;
use aifactory_portal::seed::{self, CitySpec};
use aifactory_portal::{Caller, Clock, NewUser, Portal, PortalError, Role};
use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub(crate) struct DatabaseArg {
    /// The portal's PostgreSQL database (`postgres://user@host/db`; add
    /// `?options[search_path]=schema` to keep it in a schema of its own). The connecting user
    /// needs to create the role `aifactory_portal` on first start, or a DBA creates it (NOLOGIN)
    /// and grants it to that user.
    #[arg(long, env = "AIFACTORY_PORTAL_DATABASE")]
    database: String,
}

/// The synthetic city `seed` and `bench portal` build.
#[derive(Debug, Args)]
pub(crate) struct CityArgs {
    /// Plants in the city.
    #[arg(long, default_value_t = 7_500)]
    plants: usize,
    /// Same seed, same city, same keys, same bundles.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Decisions per skill per quarter in each plant's ledger.
    #[arg(long, default_value_t = 6)]
    decisions_per_skill: usize,
    /// Parallel submissions.
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

impl CityArgs {
    fn spec(&self) -> CitySpec {
        CitySpec {
            plants: self.plants,
            seed: self.seed,
            decisions_per_skill: self.decisions_per_skill,
            ..CitySpec::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum PortalCommand {
    /// Serve the portal's HTTP API (plants, evidence, targets, vouchers, needs, audit).
    ///
    /// Every request carries `Authorization: Bearer <token>`; `aifactory portal user add`
    /// makes tokens. Tenant isolation is enforced by the API and by row-level security.
    Serve {
        #[command(flatten)]
        db: DatabaseArg,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Database connections in the pool.
        #[arg(long, default_value_t = 16)]
        pool: u32,
        /// Also take evidence from plants over NATS JetStream at this URL (e.g.
        /// nats://127.0.0.1:4222): stream AIFACTORY_EVIDENCE, subjects aifactory.evidence.ID.
        #[arg(long, env = "AIFACTORY_PORTAL_NATS")]
        nats: Option<String>,
    },
    /// Send a plant's evidence bundle to the portal over NATS JetStream (the plant's side of
    /// the sync); waits until the stream has stored it. The portal takes it only if it already
    /// holds the plant's evidence key.
    Push {
        /// The NATS server the portal consumes from.
        #[arg(
            long,
            env = "AIFACTORY_PORTAL_NATS",
            default_value = "nats://127.0.0.1:4222"
        )]
        nats: String,
        /// The plant's registered id.
        #[arg(long)]
        plant: String,
        bundle: PathBuf,
    },
    /// Seed a synthetic city: plants across districts and industries with a year of signed
    /// evidence (four quarterly bundles each), providers, budgets, targets, vouchers and
    /// redemptions. Prints the demo users' tokens (for demos and benchmarks only).
    Seed {
        #[command(flatten)]
        db: DatabaseArg,
        #[command(flatten)]
        city: CityArgs,
        #[arg(long)]
        json: bool,
    },
    /// Manage the portal's users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens: list them, revoke one, issue a new one for a user.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Register plants: one, or a registry CSV.
    #[command(subcommand)]
    Plant(PlantCommand),
    /// Submit a plant's evidence bundle (written by `aifactory assess --bundle`) as an officer
    /// would; prints the recomputed tier, or the reason the bundle was refused.
    Submit {
        #[command(flatten)]
        db: DatabaseArg,
        /// The registered plant the bundle belongs to.
        #[arg(long)]
        plant: String,
        bundle: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PlantCommand {
    /// Register one plant (its size class follows from the revenue: ≥ 20 M yuan is large-scale).
    Add {
        #[command(flatten)]
        db: DatabaseArg,
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        industry: String,
        #[arg(long)]
        district: String,
        /// Annual revenue, million yuan.
        #[arg(long)]
        revenue_myuan: f64,
        /// The plant's evidence key (64 hex digits, the `public key` that `aifactory assess
        /// --bundle` prints); without it the first accepted upload pins one.
        #[arg(long)]
        public_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Register every plant of a CSV with the header `id,name,industry,district,revenue_myuan`
    /// and optionally `public_key`. Nothing is registered unless every row is good; plants
    /// already registered are left as they are.
    Import {
        #[command(flatten)]
        db: DatabaseArg,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Set a user's password for signing in to the web UI (read from the first line of
    /// standard input, so it stays out of the shell's history); ends the user's open sessions.
    Password {
        #[command(flatten)]
        db: DatabaseArg,
        name: String,
    },
    /// Add a user and print its first API token (shown once; only its hash is stored), valid
    /// for 365 days; `aifactory portal token issue` gives more.
    Add {
        #[command(flatten)]
        db: DatabaseArg,
        name: String,
        /// officer, assessor, plant or provider.
        #[arg(long)]
        role: String,
        /// The plant of a `plant` user.
        #[arg(long)]
        plant: Option<String>,
        /// The provider of a `provider` user.
        #[arg(long)]
        provider: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// List API tokens, newest first: id, user, created, expires, and whether valid, expired or
    /// revoked (never the token itself).
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (`tok_…`, as `token list` shows it); it is refused from then on.
    Revoke {
        #[command(flatten)]
        db: DatabaseArg,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new API token for a user and print it (shown once; only its hash is stored).
    Issue {
        #[command(flatten)]
        db: DatabaseArg,
        user: String,
        /// Days until it expires (1 to 3650).
        #[arg(long, default_value_t = aifactory_portal::TOKEN_DAYS)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
}

fn wall_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

async fn open(db: &DatabaseArg, pool: u32, clock: Clock) -> anyhow::Result<Portal> {
    Portal::open(&db.database, pool, clock)
        .await
        .context("opening the portal database")
}

pub(crate) fn run(command: PortalCommand) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async move {
        match command {
            PortalCommand::Serve {
                db,
                listen,
                pool,
                nats,
            } => serve(&db, listen, pool, nats).await,
            PortalCommand::Push {
                nats,
                plant,
                bundle,
            } => {
                let bytes = std::fs::read(&bundle)
                    .with_context(|| format!("reading {}", bundle.display()))?;
                let size = bytes.len();
                aifactory_portal::nats::publish_bundle(
                    &aifactory_portal::nats::EvidenceChannel::new(nats),
                    &plant,
                    bytes,
                )
                .await?;
                println!("bundle for {plant} ({size} bytes) stored in the evidence stream");
                Ok(ExitCode::SUCCESS)
            }
            PortalCommand::Seed { db, city, json } => {
                seed_city(&db, &city.spec(), city.workers, json).await
            }
            PortalCommand::User(UserCommand::Password { db, name }) => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                let password = line.trim_end_matches(['\r', '\n']);
                let portal = open(&db, 2, wall_clock()).await?;
                portal
                    .set_password(&Caller::system(), &name, password)
                    .await
                    .with_context(|| format!("setting {name}'s password"))?;
                eprintln!("password of {name} set; their open sessions ended");
                Ok(ExitCode::SUCCESS)
            }
            PortalCommand::User(UserCommand::Add {
                db,
                name,
                role,
                plant,
                provider,
            }) => {
                let role = Role::parse(&role).with_context(|| {
                    format!("--role {role:?}: one of officer, assessor, plant, provider")
                })?;
                let portal = open(&db, 2, wall_clock()).await?;
                let issued = portal
                    .add_user(
                        &Caller::system(),
                        &NewUser {
                            name: name.clone(),
                            role,
                            plant,
                            provider,
                        },
                    )
                    .await
                    .with_context(|| format!("adding user {name}"))?;
                println!("{}", issued.token);
                eprintln!(
                    "user {name} ({}) added; the token above ({}) is shown once and expires {}",
                    role.as_str(),
                    issued.id,
                    aifactory_core::Timestamp(issued.expires_at_ms)
                );
                Ok(ExitCode::SUCCESS)
            }
            PortalCommand::Token(command) => token_command(command).await,
            PortalCommand::Plant(command) => plant_command(command).await,
            PortalCommand::Submit {
                db,
                plant,
                bundle,
                json,
            } => {
                let bytes = std::fs::read(&bundle)
                    .with_context(|| format!("reading {}", bundle.display()))?;
                let portal = open(&db, 2, wall_clock()).await?;
                match portal.submit_evidence(&Caller::system(), &plant, bytes).await {
                    Ok(record) => {
                        if json {
                            println!("{}", serde_json::to_string_pretty(&record)?);
                        } else {
                            println!(
                                "accepted: plant {plant} at tier {} ({} ledger entries, evidence #{})",
                                record.tier.unwrap_or(0),
                                record.entries.unwrap_or(0),
                                record.id
                            );
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(PortalError::Evidence(reason)) => {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"accepted": false, "reason": reason})
                            );
                        } else {
                            eprintln!("refused: {reason}");
                        }
                        Ok(ExitCode::from(2))
                    }
                    Err(e) => Err(e).context("submitting the bundle"),
                }
            }
        }
    })
}

async fn token_command(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::List { db, user, json } => {
            let portal = open(&db, 2, wall_clock()).await?;
            let tokens = portal
                .tokens(&Caller::system(), user.as_deref())
                .await
                .context("listing tokens")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                println!(
                    "{:<20}  {:<24}  {:<24}  {:<24}  state",
                    "id", "user", "created", "expires"
                );
                for t in &tokens {
                    let state = match (&t.revoked_by, t.revoked_at_ms) {
                        (Some(by), Some(at)) => {
                            format!("revoked by {by} {}", aifactory_core::Timestamp(at))
                        }
                        _ => t.state.to_owned(),
                    };
                    println!(
                        "{:<20}  {:<24}  {:<24}  {:<24}  {state}",
                        t.id,
                        t.user,
                        aifactory_core::Timestamp(t.created_at_ms).to_string(),
                        aifactory_core::Timestamp(t.expires_at_ms).to_string()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { db, id, json } => {
            let portal = open(&db, 2, wall_clock()).await?;
            let token = portal
                .revoke_token(&Caller::system(), &id)
                .await
                .with_context(|| format!("revoking token {id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&token)?);
            } else {
                println!("token {} of {} revoked", token.id, token.user);
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Issue {
            db,
            user,
            days,
            json,
        } => {
            let portal = open(&db, 2, wall_clock()).await?;
            let issued = portal
                .issue_token(&Caller::system(), &user, Some(days))
                .await
                .with_context(|| format!("issuing a token for {user}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&issued)?);
            } else {
                println!("{}", issued.token);
                eprintln!(
                    "token {} for {user}; shown once, expires {}",
                    issued.id,
                    aifactory_core::Timestamp(issued.expires_at_ms)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn plant_command(command: PlantCommand) -> anyhow::Result<ExitCode> {
    match command {
        PlantCommand::Add {
            db,
            id,
            name,
            industry,
            district,
            revenue_myuan,
            public_key,
            json,
        } => {
            let portal = open(&db, 2, wall_clock()).await?;
            let plant = portal
                .register_plant(
                    &Caller::system(),
                    &aifactory_portal::NewPlant {
                        id: id.clone(),
                        name,
                        industry,
                        district,
                        revenue_myuan,
                        public_key,
                    },
                )
                .await
                .with_context(|| format!("registering plant {id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plant)?);
            } else {
                println!(
                    "registered plant {} ({}, {}, {})",
                    plant.id, plant.district, plant.industry, plant.size_class
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PlantCommand::Import { db, file, json } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let plants =
                match aifactory_portal::parse_plants_csv(&file.display().to_string(), &text) {
                    Ok(p) => p,
                    Err(errors) => {
                        for e in &errors {
                            eprintln!("{e}");
                        }
                        anyhow::bail!("{} bad row(s); nothing was registered", errors.len());
                    }
                };
            let portal = open(&db, 2, wall_clock()).await?;
            let bar = bar(plants.len() as u64, "registering plants", json);
            let (mut registered, mut existing) = (0usize, 0usize);
            for plant in &plants {
                match portal.register_plant(&Caller::system(), plant).await {
                    Ok(_) => registered += 1,
                    Err(PortalError::Conflict(_)) => existing += 1,
                    Err(e) => {
                        return Err(e).with_context(|| format!("registering plant {}", plant.id));
                    }
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"registered": registered, "already_registered": existing})
                );
            } else {
                println!("registered {registered} plants ({existing} were registered already)");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(
    db: &DatabaseArg,
    listen: SocketAddr,
    pool: u32,
    nats: Option<String>,
) -> anyhow::Result<ExitCode> {
    let portal = open(db, pool, wall_clock()).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = match nats {
        None => None,
        Some(url) => {
            let channel = aifactory_portal::nats::EvidenceChannel::new(url.clone());
            eprintln!(
                "taking evidence from NATS at {url} (subjects {}.ID)",
                channel.prefix
            );
            let portal = portal.clone();
            Some(tokio::spawn(aifactory_portal::nats::consume_evidence(
                portal,
                channel,
                stopped,
                |received| {
                    use aifactory_portal::nats::Received;
                    match received {
                        Received::Accepted { plant, tier } => {
                            eprintln!("evidence from {plant} over NATS: accepted, tier {tier}")
                        }
                        Received::Refused { plant, reason } => {
                            eprintln!("evidence from {plant} over NATS: refused: {reason}")
                        }
                        Received::Dropped { subject, reason } => {
                            eprintln!("message on {subject} dropped: {reason}")
                        }
                    }
                },
            )))
        }
    };
    let app = aifactory_portal::http::router(portal);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!(
        "aifactory portal on http://{} (API under /api/v1; Ctrl-C stops)",
        listener.local_addr()?
    );
    // The client's address keys the sign-in limiter (a proxy in front makes every client one).
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        crate::setup::stop_requested().await;
    });
    match consumer {
        None => server.await.context("serving the portal")?,
        // The consumer runs as long as the server; if it ends first, that is an error to show.
        Some(mut consumer) => tokio::select! {
            served = server => {
                served.context("serving the portal")?;
                let _ = stop.send(true);
                match consumer.await {
                    Ok(result) => result.context("the NATS evidence consumer")?,
                    Err(e) => return Err(e).context("the NATS evidence consumer"),
                }
            }
            ended = &mut consumer => {
                return match ended {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the NATS evidence consumer stopped (the stream closed)")),
                    Ok(Err(e)) => Err(e).context("the NATS evidence consumer"),
                    Err(e) => Err(e).context("the NATS evidence consumer"),
                };
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A fixed clock inside the seeded year, so that seeds replay exactly and vouchers are valid.
fn seed_clock(spec: &CitySpec) -> Clock {
    let at = aifactory_core::Timestamp::from_civil(spec.year, 12, 31, 23, 30, 0, 480).0;
    Arc::new(move || at)
}

async fn seed_city(
    db: &DatabaseArg,
    spec: &CitySpec,
    workers: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let portal = open(db, workers as u32 + 2, seed_clock(spec)).await?;
    let started = Instant::now();
    let users = seed::seed_registry(&portal, spec)
        .await
        .context("seeding the registry")?;
    let mut quarters = Vec::new();
    for quarter in 1..=4 {
        let bar = bar(
            spec.plants as u64,
            &format!("evidence, quarter {quarter}"),
            json,
        );
        let tick = bar.clone();
        let t = Instant::now();
        let (accepted, refused) =
            seed::seed_evidence(&portal, spec, quarter, workers, move || tick.inc(1))
                .await
                .with_context(|| format!("seeding quarter {quarter}'s evidence"))?;
        bar.finish_and_clear();
        quarters.push(serde_json::json!({"quarter": quarter, "accepted": accepted, "refused": refused, "seconds": t.elapsed().as_secs_f64()}));
    }
    let t = Instant::now();
    let (vouchers, redemptions) = seed::seed_vouchers(&portal, spec, workers)
        .await
        .context("seeding vouchers")?;
    let voucher_seconds = t.elapsed().as_secs_f64();
    let tokens: serde_json::Map<String, serde_json::Value> = users
        .iter()
        .map(|u| (u.clone(), seed::seed_token(spec, u).into()))
        .collect();
    let summary = serde_json::json!({
        "plants": spec.plants, "seed": spec.seed, "evidence": quarters,
        "vouchers": vouchers, "redemptions": redemptions, "voucher_seconds": voucher_seconds,
        "seconds": started.elapsed().as_secs_f64(), "tokens": tokens,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "seeded {} plants (seed {}) in {:.1} s: a year of evidence, {vouchers} vouchers, {redemptions} redemptions",
            spec.plants,
            spec.seed,
            started.elapsed().as_secs_f64()
        );
        for (user, token) in &tokens {
            println!("  {user:<9} token {}", token.as_str().unwrap_or_default());
        }
        println!("demo tokens follow from the seed: use them for demos and benchmarks only");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct PortalBenchArgs {
    #[command(flatten)]
    db: DatabaseArg,
    #[command(flatten)]
    city: CityArgs,
    /// Requests per query kind for the latency figures.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Time the year-end ingest over NATS JetStream at this URL instead of HTTP uploads (a
    /// stream of the bench's own, removed afterwards).
    #[arg(long)]
    nats: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Uploads every bundle over HTTP, `workers` at once; returns (accepted, refused).
async fn ingest_over_http(
    addr: SocketAddr,
    client: &reqwest::Client,
    token: &str,
    bundles: Vec<(String, Vec<u8>)>,
    workers: usize,
    bar: &ProgressBar,
) -> anyhow::Result<(usize, usize)> {
    let queue = Arc::new(tokio::sync::Mutex::new(bundles));
    let mut uploads = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (queue, client, token, bar) =
            (queue.clone(), client.clone(), token.to_owned(), bar.clone());
        uploads.spawn(async move {
            let (mut accepted, mut refused) = (0usize, 0usize);
            loop {
                let next = queue.lock().await.pop();
                let Some((plant, body)) = next else { break };
                let response = client
                    .post(format!("http://{addr}/api/v1/plants/{plant}/evidence"))
                    .bearer_auth(&token)
                    .body(body)
                    .send()
                    .await?;
                match response.status().as_u16() {
                    201 => accepted += 1,
                    422 => refused += 1,
                    other => anyhow::bail!(
                        "{plant}: HTTP {other}: {}",
                        response.text().await.unwrap_or_default()
                    ),
                }
                bar.inc(1);
            }
            Ok::<_, anyhow::Error>((accepted, refused))
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(done) = uploads.join_next().await {
        let (a, r) = done??;
        accepted += a;
        refused += r;
    }
    Ok((accepted, refused))
}

/// Publishes every bundle to a JetStream stream of its own (`workers` publishers) while the
/// portal's consumer records them; returns (accepted, refused) once all are recorded.
async fn ingest_over_nats(
    portal: &Portal,
    url: &str,
    bundles: Vec<(String, Vec<u8>)>,
    workers: usize,
    bar: &ProgressBar,
) -> anyhow::Result<(usize, usize)> {
    use aifactory_portal::nats::{self, EvidenceChannel, Received};
    let channel = EvidenceChannel {
        url: url.to_owned(),
        stream: format!("AIFACTORY_EVIDENCE_BENCH_{}", std::process::id()),
        prefix: format!("aifactory_bench_{}.evidence", std::process::id()),
    };
    let total = bundles.len();
    let counts = Arc::new(std::sync::Mutex::new((0usize, 0usize, 0usize)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (seen, tick) = (counts.clone(), bar.clone());
    // The stream must exist before the consumer binds to it: publish one bundle first.
    let mut bundles = bundles;
    let first = bundles.pop().context("no bundles")?;
    nats::publish_bundle(&channel, &first.0, first.1).await?;
    let consumer = tokio::spawn(nats::consume_evidence(
        portal.clone(),
        channel.clone(),
        stopped,
        move |received| {
            if let Ok(mut c) = seen.lock() {
                match received {
                    Received::Accepted { .. } => c.0 += 1,
                    Received::Refused { .. } => c.1 += 1,
                    Received::Dropped { .. } => c.2 += 1,
                }
            }
            tick.inc(1);
        },
    ));
    let queue = Arc::new(tokio::sync::Mutex::new(bundles));
    let mut publishers = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (queue, channel) = (queue.clone(), channel.clone());
        publishers.spawn(async move {
            loop {
                let next = queue.lock().await.pop();
                let Some((plant, body)) = next else { break };
                nats::publish_bundle(&channel, &plant, body).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = publishers.join_next().await {
        done??;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let (accepted, refused, dropped) = loop {
        let c = *counts
            .lock()
            .map_err(|_| anyhow::anyhow!("counter poisoned"))?;
        if c.0 + c.1 + c.2 >= total || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = stop.send(true);
    let _ = consumer.await;
    let _ = nats::delete_stream(&channel).await;
    anyhow::ensure!(
        accepted + refused == total,
        "{} of {total} bundles recorded over NATS ({dropped} dropped)",
        accepted + refused
    );
    Ok((accepted, refused))
}

/// Parses and verifies every bundle on `threads` threads; returns how many verified.
fn verify_only(bundles: &[(String, Vec<u8>)], threads: usize) -> usize {
    let chunk = bundles.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = bundles
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter(|(_, bytes)| {
                            serde_json::from_slice::<aifactory_assess::EvidenceBundle>(bytes)
                                .ok()
                                .is_some_and(|b| aifactory_assess::verify(&b).is_ok())
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

/// The request path of the i-th timed request of a kind.
type PathFor<'a> = Box<dyn Fn(usize) -> String + 'a>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Seeds quarters 1–3 and the vouchers, then times the year-end ingest of every plant's bundle
/// and the portal's main queries over HTTP.
pub(crate) fn bench(args: &PortalBenchArgs) -> anyhow::Result<ExitCode> {
    let spec = args.city.spec();
    let workers = args.city.workers;
    let rt = runtime()?;
    rt.block_on(async move {
        let portal = open(&args.db, workers as u32 + 4, seed_clock(&spec)).await?;
        let existing = portal
            .plants(&Caller::system(), &Default::default())
            .await
            .context("reading the registry")?;
        anyhow::ensure!(
            existing.is_empty(),
            "the database already holds plants: benchmark on an empty database or schema"
        );
        let t = Instant::now();
        seed::seed_registry(&portal, &spec).await?;
        for quarter in 1..=3 {
            let bar = bar(spec.plants as u64, &format!("history, quarter {quarter}"), args.json);
            let tick = bar.clone();
            seed::seed_evidence(&portal, &spec, quarter, workers, move || tick.inc(1)).await?;
            bar.finish_and_clear();
        }
        let (vouchers, redemptions) = seed::seed_vouchers(&portal, &spec, workers).await?;
        let history_seconds = t.elapsed().as_secs_f64();

        // The year-end bundles, signed beforehand (that is the plants' work, not the portal's).
        let bundles = seed::prepare_bundles(&spec, 4, workers)?;
        let bytes: usize = bundles.iter().map(|(_, b)| b.len()).sum();
        let entries_q4: usize = seed::city(&spec)
            .iter()
            .map(|p| seed::ledger(p, &spec, 4).entries().len())
            .sum();
        // The peer, in the same run: verification alone (parse, hash chain, signature,
        // recomputed tier) on the same bundles with as many threads, no database, no HTTP.
        let t = Instant::now();
        let verified = verify_only(&bundles, workers);
        let verify_seconds = t.elapsed().as_secs_f64();
        anyhow::ensure!(verified == bundles.len(), "{} of {} bundles verified", verified, bundles.len());

        let app = aifactory_portal::http::router(portal.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await;
        });
        let token = seed::seed_token(&spec, "officer");
        aifactory_agent::provider::install_tls_crypto();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;

        // The timed ingest: every plant's year-end bundle, uploaded over HTTP `workers` at once,
        // or with --nats published to JetStream by `workers` plants at once and recorded by the
        // portal's one consumer (as `serve --nats` runs it), timed until the last is recorded.
        let bar = bar(spec.plants as u64, "year-end evidence (timed)", args.json);
        let t = Instant::now();
        let (accepted, refused) = match &args.nats {
            None => ingest_over_http(addr, &client, &token, bundles, workers, &bar).await?,
            Some(url) => ingest_over_nats(&portal, url, bundles, workers, &bar).await?,
        };
        let ingest_seconds = t.elapsed().as_secs_f64();
        bar.finish_and_clear();

        // Query latency over HTTP, as a browser or a script would see it.
        let city = seed::city(&spec);
        let mut figures = serde_json::Map::new();
        let kinds: [(&str, PathFor); 3] = [
            ("targets_dashboard", Box::new(|_| "/api/v1/targets?year=2026".to_owned())),
            (
                "plant_history",
                Box::new(|i| format!("/api/v1/plants/{}/evidence", city[(i * 7919) % city.len()].id)),
            ),
            (
                "voucher_book",
                Box::new(|i| match i % 3 {
                    0 => "/api/v1/vouchers".to_owned(),
                    1 => "/api/v1/vouchers?status=active".to_owned(),
                    _ => format!("/api/v1/vouchers?budget=compute-{}&offset=100", spec.year),
                }),
            ),
        ];
        for (name, path) in &kinds {
            let mut ms = Vec::with_capacity(args.requests);
            // Warm the connection and the caches once, untimed.
            let _ = client.get(format!("http://{addr}{}", path(0))).bearer_auth(&token).send().await;
            for i in 0..args.requests {
                let url = format!("http://{addr}{}", path(i));
                let t = Instant::now();
                let response = client.get(&url).bearer_auth(&token).send().await?;
                let status = response.status();
                let _ = response.bytes().await?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(status.is_success(), "{url}: {status}");
            }
            ms.sort_by(f64::total_cmp);
            figures.insert(
                (*name).to_owned(),
                serde_json::json!({"p50_ms": percentile(&ms, 50.0), "p95_ms": percentile(&ms, 95.0),
                                   "p99_ms": percentile(&ms, 99.0), "max_ms": ms.last().copied().unwrap_or(f64::NAN),
                                   "requests": ms.len()}),
            );
        }
        let tb = portal.trial_balance(&Caller::system()).await?;
        let report = serde_json::json!({
            "plants": spec.plants, "seed": spec.seed, "decisions_per_skill": spec.decisions_per_skill,
            "workers": workers,
            "history": {"quarters": 3, "vouchers": vouchers, "redemptions": redemptions, "seconds": history_seconds},
            "ingest": {"via": if args.nats.is_some() { "NATS JetStream, one consumer" } else { "HTTP upload" }, "bundles": accepted + refused, "accepted": accepted, "refused": refused,
                       "seconds": ingest_seconds, "per_second": (accepted + refused) as f64 / ingest_seconds,
                       "megabytes": bytes as f64 / 1e6, "ledger_entries": entries_q4},
            "peer_verify_only": {"seconds": verify_seconds, "per_second": verified as f64 / verify_seconds,
                                 "ingest_over_verify": ingest_seconds / verify_seconds},
            "queries": figures,
            "books_balanced": tb.balanced,
        });
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "portal benchmark: {} plants, year-end ingest {:.1} s ({:.0} bundles/s, {:.0} MB, {} ledger entries); books balanced: {}",
                spec.plants,
                ingest_seconds,
                (accepted + refused) as f64 / ingest_seconds,
                bytes as f64 / 1e6,
                entries_q4,
                tb.balanced
            );
            println!(
                "  peer: verification alone {:.1} s ({:.0} bundles/s); the portal's ingest takes {:.2}× that",
                verify_seconds,
                verified as f64 / verify_seconds,
                ingest_seconds / verify_seconds
            );
            for (name, f) in &figures {
                println!(
                    "  {name:<18} p50 {:>6.1} ms  p95 {:>6.1} ms  p99 {:>6.1} ms",
                    f["p50_ms"].as_f64().unwrap_or(f64::NAN),
                    f["p95_ms"].as_f64().unwrap_or(f64::NAN),
                    f["p99_ms"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
