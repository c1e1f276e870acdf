//! `aifactory agent …` and `aifactory mcp`: the agent platform from the command line, either
//! against a running `aifactory serve` (`--server`, with a token) or embedded — a live twin of
//! the plant started for the command on the same store, so it works on a fresh machine.

use aifactory_agent::provider::{ChatClient, ModelConfig, Preset};
use aifactory_agent::{Agent, Caller};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Which model (none: the offline planner), the approval policy and the manuals.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ModelArgs {
    /// Model provider preset: qwen (DashScope compatible mode, key in DASHSCOPE_API_KEY),
    /// deepseek (DEEPSEEK_API_KEY), vllm or ollama (local) [default: no model — the offline
    /// planner].
    #[arg(long, env = "AIFACTORY_MODEL_PRESET")]
    pub(crate) model_preset: Option<String>,
    /// Any OpenAI-compatible base URL, up to /v1 (overrides the preset's).
    #[arg(long, env = "AIFACTORY_MODEL_URL")]
    pub(crate) model_url: Option<String>,
    /// Model name (overrides the preset's).
    #[arg(long, env = "AIFACTORY_MODEL")]
    pub(crate) model: Option<String>,
    /// API key (overrides the preset's environment variable).
    #[arg(long, env = "AIFACTORY_MODEL_KEY", hide_env_values = true)]
    pub(crate) model_key: Option<String>,
    /// Seconds one model call may take.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) model_timeout: f64,
    /// Ask for whole answers instead of streamed ones.
    #[arg(long)]
    pub(crate) no_stream: bool,
    /// Approval policy file (TOML; see docs/AGENT.md) [default: every acting tool waits for a
    /// person].
    #[arg(long, env = "AIFACTORY_AGENT_POLICY")]
    pub(crate) agent_policy: Option<PathBuf>,
    /// Folder of manuals and SOPs (.md, .txt) to index [default: the sample set of the
    /// reference plant].
    #[arg(long, env = "AIFACTORY_MANUALS")]
    pub(crate) manuals: Option<PathBuf>,
}

impl ModelArgs {
    /// The model to use, or `None` for the offline planner.
    pub(crate) fn model_config(&self) -> anyhow::Result<Option<ModelConfig>> {
        let preset = match &self.model_preset {
            Some(p) => Some(Preset::parse(p).with_context(|| {
                format!("--model-preset {p}: use qwen, deepseek, vllm or ollama")
            })?),
            None => None,
        };
        let mut config = match (preset, &self.model_url) {
            (None, None) => {
                if self.model.is_some() {
                    anyhow::bail!("--model needs --model-preset or --model-url");
                }
                return Ok(None);
            }
            (Some(p), _) => ModelConfig::preset(p, |k| std::env::var(k).ok()),
            (None, Some(_)) => ModelConfig::preset(Preset::Vllm, |_| None),
        };
        if let Some(url) = &self.model_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("--model-url {url}: give an http:// or https:// URL up to /v1");
            }
            config.base_url = url.clone();
        }
        if let Some(m) = &self.model {
            config.model = m.clone();
        }
        if self.model_key.is_some() {
            config.api_key = self.model_key.clone();
        }
        if !(self.model_timeout.is_finite()
            && self.model_timeout > 0.0
            && self.model_timeout <= 600.0)
        {
            anyhow::bail!("--model-timeout must be more than 0 and at most 600 seconds");
        }
        config.timeout_s = self.model_timeout;
        config.stream = !self.no_stream;
        Ok(Some(config))
    }

    /// The agent over `state`'s plant, attached to it.
    pub(crate) fn attach(
        &self,
        state: &Arc<aifactory_server::AppState>,
        epoch_ms: i64,
    ) -> anyhow::Result<Arc<Agent>> {
        let policy = match &self.agent_policy {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the policy {}", path.display()))?;
                aifactory_agent::policy::Policy::from_toml(&text)
                    .with_context(|| format!("in {}", path.display()))?
            }
            None => aifactory_agent::policy::Policy::default(),
        };
        let manuals = match &self.manuals {
            Some(dir) => aifactory_agent::manuals::Manuals::from_dir(dir)?,
            None => aifactory_agent::manuals::Manuals::sample()?,
        };
        let model = match self.model_config()? {
            Some(c) => Some(ChatClient::new(c)?),
            None => None,
        };
        let agent = Arc::new(Agent::new(
            state.store.clone(),
            Arc::new(aifactory_server::agent::PlantAccess::new(state)),
            Arc::new(manuals),
            policy,
            model,
            Arc::new(wall_clock),
            epoch_ms,
        ));
        state.set_agent(Arc::clone(&agent));
        Ok(agent)
    }
}

/// The time now, for the audit log: the binary's edge is where the wall clock is read.
pub(crate) fn wall_clock() -> aifactory_core::Timestamp {
    aifactory_core::Timestamp(now_ms())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the plant is: a running server, or one started here.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PlantArgs {
    /// A running `aifactory serve` to work through, e.g. http://127.0.0.1:8080 [default: start
    /// the plant here, embedded].
    #[arg(long, env = "AIFACTORY_SERVER", global = true)]
    server: Option<String>,
    /// API token for --server (POST /api/v1/tokens issues one).
    #[arg(long, env = "AIFACTORY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Embedded: the store, a SQLite file or a postgres:// URL [default: <data.dir>/serve.sqlite].
    #[arg(long, env = "AIFACTORY_DB", global = true)]
    db: Option<String>,
    /// Embedded: the plant file [default: the built-in reference plant].
    #[arg(long, global = true)]
    plant: Option<PathBuf>,
    /// Embedded: seed of the twin.
    #[arg(long, default_value_t = 1, global = true)]
    seed: u64,
    /// Embedded: days the twin runs before the command works on it.
    #[arg(long, default_value_t = 1.0, global = true)]
    warm_up_days: f64,
    /// Embedded: who you are, for the audit log [default: $USER].
    #[arg(long, global = true)]
    user: Option<String>,
    /// Embedded: your role (viewer, operator, engineer, admin, agent).
    #[arg(long, default_value = "operator", global = true)]
    role: String,
}

impl PlantArgs {
    /// An embedded plant on the store `db` (for benchmarks).
    pub(crate) fn embedded(db: &str, warm_up_days: f64) -> PlantArgs {
        PlantArgs {
            server: None,
            token: None,
            db: Some(db.to_owned()),
            plant: None,
            seed: 1,
            warm_up_days,
            user: None,
            role: "operator".to_owned(),
        }
    }

    fn caller(&self) -> anyhow::Result<Caller> {
        if !aifactory_agent::policy::ROLES.contains(&self.role.as_str()) {
            anyhow::bail!(
                "--role {}: use viewer, operator, engineer, admin or agent",
                self.role
            );
        }
        let user = self
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "cli".to_owned());
        Ok(Caller::new(user, self.role.clone()))
    }
}

/// A plant started for one command, with the agent attached.
pub(crate) struct Embedded {
    pub(crate) state: Arc<aifactory_server::AppState>,
    pub(crate) agent: Arc<Agent>,
    twin: aifactory_runtime::live::LiveTwin,
}

impl Embedded {
    pub(crate) async fn start(
        config: &crate::config::Config,
        plant: &PlantArgs,
        model: &ModelArgs,
    ) -> anyhow::Result<Embedded> {
        if !(plant.warm_up_days.is_finite() && (0.0..=30.0).contains(&plant.warm_up_days)) {
            anyhow::bail!("--warm-up-days must be between 0 and 30");
        }
        // Bad options fail before the twin starts.
        model.model_config()?;
        plant.caller()?;
        let file = crate::setup::plant_or_reference(plant.plant.as_deref())?;
        let db = plant
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
        let store = aifactory_store::Store::open(&db)
            .await
            .with_context(|| format!("opening the store {}", crate::setup::shown_location(&db)))?;
        let commands =
            aifactory_runtime::live::TwinCommands::new(aifactory_twin::CommandInbox::new());
        let (live, publisher) = aifactory_server::live::Live::new(Some(Arc::new(commands.clone())));
        let spec = aifactory_runtime::live::LiveSpec {
            plant: file,
            seed: plant.seed,
            // The shared plan the agent's questions were written against.
            tier: 2,
            speed: 60.0,
            warm_up_days: plant.warm_up_days,
            mqtt: None,
            clock: aifactory_runtime::Clock::system(),
        };
        let twin = aifactory_runtime::live::start(spec, store.clone(), publisher, commands)
            .await
            .context("starting the twin")?;
        twin.warmed_up().await;
        let started = std::time::Instant::now();
        let state = aifactory_server::AppState::new(
            store,
            aifactory_server::auth::Accounts::new(),
            Arc::new(move || started.elapsed()),
            live,
            now_ms(),
        );
        match model.attach(&state, now_ms()) {
            Ok(agent) => Ok(Embedded { state, agent, twin }),
            Err(e) => {
                // The twin's thread would keep the process alive: stop it before failing.
                let _ = twin.stop().await;
                Err(e)
            }
        }
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.twin.stop().await?;
        Ok(())
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AgentCommand {
    /// Ask the agent, in English or Chinese: it answers with the plant's tools, and any change
    /// to the plant it proposes waits for a person's approval.
    ///
    /// With no model configured the offline planner answers (it says so).
    Ask {
        /// The question or task, e.g. "what if TURN-02 is down for 6 hours?".
        question: String,
        #[command(flatten)]
        plant: PlantArgs,
        #[command(flatten)]
        model: ModelArgs,
        /// Print the whole answer (tool calls, outcomes, citations, usage) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the actions held for approval (or all), or approve or reject one.
    Approvals {
        #[command(subcommand)]
        decision: Option<Decision>,
        /// Only actions in this status: pending, approved, rejected, executed or failed
        /// [default: pending].
        #[arg(long, default_value = "pending", global = true)]
        status: String,
        #[command(flatten)]
        plant: PlantArgs,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Model tokens and time used, per user, skill and model (what compute vouchers pay for).
    Usage {
        /// The store [default: <data.dir>/serve.sqlite].
        #[arg(long, env = "AIFACTORY_DB")]
        db: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write conversations, tool traces and their outcomes as fine-tuning data (OpenAI chat
    /// JSONL), with personal data and secrets removed.
    Export {
        /// The JSONL file to write.
        #[arg(long)]
        out: PathBuf,
        /// The store [default: <data.dir>/serve.sqlite].
        #[arg(long, env = "AIFACTORY_DB")]
        db: Option<String>,
        /// The most recent audit steps to read.
        #[arg(long, default_value_t = 100_000)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum Decision {
    /// Approve a held action: it is executed now, and recorded in the ledger.
    Approve { id: String },
    /// Reject a held action: it is never executed.
    Reject { id: String },
}

/// A client of a running server.
pub(crate) struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    fn of(plant: &PlantArgs) -> anyhow::Result<Option<Remote>> {
        let Some(base) = &plant.server else {
            return Ok(None);
        };
        let token = plant.token.clone().context(
            "--server needs --token (or AIFACTORY_TOKEN): an API token from POST /api/v1/tokens",
        )?;
        Remote::new(base, token).map(Some)
    }

    /// A client of the server at `base` that sends `token`.
    pub(crate) fn new(base: &str, token: String) -> anyhow::Result<Remote> {
        aifactory_agent::provider::install_tls_crypto();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .context("starting the HTTP client")?;
        Ok(Remote {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching {url}"))?;
        let status = response.status();
        let value: serde_json::Value = response
            .json()
            .await
            .with_context(|| format!("{url} answered HTTP {status} without JSON"))?;
        if !status.is_success() {
            anyhow::bail!(
                "{url}: HTTP {status}: {}",
                value["error"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(value)
    }
}

pub(crate) fn run(
    config: &crate::config::Config,
    command: AgentCommand,
) -> anyhow::Result<ExitCode> {
    let runtime = crate::setup::runtime()?;
    runtime.block_on(async move {
        match command {
            AgentCommand::Ask {
                question,
                plant,
                model,
                json,
            } => ask(config, &question, &plant, &model, json).await,
            AgentCommand::Approvals {
                decision,
                status,
                plant,
                json,
            } => approvals(config, decision, &status, &plant, json).await,
            AgentCommand::Usage { db, json } => usage(config, db, json).await,
            AgentCommand::Export {
                out,
                db,
                limit,
                json,
            } => export(config, db, &out, limit, json).await,
        }
    })
}

fn print_answer(answer: &serde_json::Value, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        );
        return;
    }
    println!("{}", answer["text"].as_str().unwrap_or(""));
    if let Some(citations) = answer["citations"].as_array().filter(|c| !c.is_empty()) {
        println!("\nSources:");
        for c in citations {
            println!(
                "  [{}] {} — {}",
                c["id"].as_str().unwrap_or(""),
                c["title"].as_str().unwrap_or(""),
                c["section"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(p) = answer["pending_actions"]
        .as_array()
        .filter(|p| !p.is_empty())
    {
        let ids: Vec<&str> = p.iter().filter_map(|x| x.as_str()).collect();
        println!(
            "\nWaiting for approval: {} (aifactory agent approvals approve ID)",
            ids.join(", ")
        );
    }
    eprintln!(
        "({}; {} step(s); conversation {}; {:.0} ms)",
        answer["by"].as_str().unwrap_or(""),
        answer["steps"].as_array().map_or(0, Vec::len),
        answer["conversation"].as_str().unwrap_or(""),
        answer["elapsed_ms"].as_f64().unwrap_or(0.0)
    );
}

async fn ask(
    config: &crate::config::Config,
    question: &str,
    plant: &PlantArgs,
    model: &ModelArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(remote) = Remote::of(plant)? {
        let answer = remote
            .send(
                reqwest::Method::POST,
                "/api/v1/agent/ask",
                Some(serde_json::json!({ "question": question })),
            )
            .await?;
        print_answer(&answer, json);
        return Ok(ExitCode::SUCCESS);
    }
    let caller = plant.caller()?;
    eprintln!("starting the plant here (embedded; --server uses a running one) …");
    let embedded = Embedded::start(config, plant, model).await?;
    let answer = embedded.agent.ask(&caller, "cli", question).await;
    embedded.stop().await?;
    let answer = answer?;
    print_answer(&serde_json::to_value(&answer)?, json);
    Ok(ExitCode::SUCCESS)
}

fn print_actions(list: &[serde_json::Value], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "actions": list }))
                .unwrap_or_default()
        );
        return;
    }
    if list.is_empty() {
        println!("no actions");
        return;
    }
    for a in list {
        println!(
            "{}  {:<9} {:<18} {}  by {} ({}, via {}){}",
            a["id"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            a["tool"].as_str().unwrap_or(""),
            a["arguments"],
            a["requested_by"].as_str().unwrap_or(""),
            a["role"].as_str().unwrap_or(""),
            a["via"].as_str().unwrap_or(""),
            a["decided_by"]
                .as_str()
                .map_or_else(String::new, |d| format!("; decided by {d}")),
        );
    }
}

async fn approvals(
    config: &crate::config::Config,
    decision: Option<Decision>,
    status: &str,
    plant: &PlantArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    const STATUSES: [&str; 6] = [
        "pending", "approved", "rejected", "executed", "failed", "all",
    ];
    if !STATUSES.contains(&status) {
        anyhow::bail!(
            "--status {status}: use pending, approved, rejected, executed, failed or all"
        );
    }
    let filter = (status != "all").then_some(status);
    if let Some(remote) = Remote::of(plant)? {
        match decision {
            None => {
                let path = match filter {
                    Some(s) => format!("/api/v1/agent/actions?status={s}"),
                    None => "/api/v1/agent/actions".to_owned(),
                };
                let v = remote.send(reqwest::Method::GET, &path, None).await?;
                print_actions(v["actions"].as_array().map_or(&[], Vec::as_slice), json);
            }
            Some(d) => {
                let (id, verb) = match &d {
                    Decision::Approve { id } => (id, "approve"),
                    Decision::Reject { id } => (id, "reject"),
                };
                let v = remote
                    .send(
                        reqwest::Method::POST,
                        &format!("/api/v1/agent/actions/{id}/{verb}"),
                        None,
                    )
                    .await?;
                print_actions(std::slice::from_ref(&v["action"]), json);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match decision {
        None => {
            let db = plant
                .db
                .clone()
                .unwrap_or_else(|| config.data.dir.join("serve.sqlite").display().to_string());
            let store = aifactory_store::Store::open(&db).await.with_context(|| {
                format!("opening the store {}", crate::setup::shown_location(&db))
            })?;
            let list = store.actions(filter, 1_000).await?;
            let list: Vec<serde_json::Value> = list
                .iter()
                .map(aifactory_server::agent::action_json)
                .collect();
            print_actions(&list, json);
        }
        Some(d) => {
            let caller = plant.caller()?;
            let (id, approve) = match &d {
                Decision::Approve { id } => (id.clone(), true),
                Decision::Reject { id } => (id.clone(), false),
            };
            // Executing needs the plant: the embedded twin takes the command.
            let embedded = Embedded::start(config, plant, &ModelArgs::default()).await?;
            let decided = embedded.agent.decide(&caller, "cli", &id, approve).await;
            embedded.stop().await?;
            let action = decided?;
            print_actions(&[aifactory_server::agent::action_json(&action)], json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn usage(
    config: &crate::config::Config,
    db: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let db = db.unwrap_or_else(|| config.data.dir.join("serve.sqlite").display().to_string());
    let store = aifactory_store::Store::open(&db)
        .await
        .with_context(|| format!("opening the store {}", crate::setup::shown_location(&db)))?;
    let totals = store.usage_totals().await?;
    if json {
        let rows: Vec<serde_json::Value> = totals
            .iter()
            .map(|t| serde_json::json!({ "user": t.user, "skill": t.skill, "model": t.model, "calls": t.calls, "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens, "elapsed_ms": t.elapsed_ms }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "usage": rows }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if totals.is_empty() {
        println!("no model calls recorded (the offline planner uses none)");
    }
    for t in totals {
        println!(
            "{:<16} {:<28} {:<24} {:>5} calls {:>9} prompt {:>8} completion tokens {:>8.1} s",
            t.user,
            t.skill,
            t.model,
            t.calls,
            t.prompt_tokens,
            t.completion_tokens,
            t.elapsed_ms as f64 / 1e3
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(
    config: &crate::config::Config,
    db: Option<String>,
    out: &std::path::Path,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let db = db.unwrap_or_else(|| config.data.dir.join("serve.sqlite").display().to_string());
    let store = aifactory_store::Store::open(&db)
        .await
        .with_context(|| format!("opening the store {}", crate::setup::shown_location(&db)))?;
    let (lines, stats) = aifactory_agent::export::export(&store, limit).await?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "file": out, "stats": stats }))?
        );
    } else {
        println!(
            "wrote {} conversation(s) to {} ({} left out: no answer; {} personal data or secrets removed)",
            stats.conversations,
            out.display(),
            stats.skipped,
            stats.redactions
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `aifactory mcp`: the tools over MCP.
#[derive(Debug, clap::Args)]
pub(crate) struct McpArgs {
    /// Serve streamable HTTP at this address (at /mcp, with the rest of the API) instead of
    /// stdio; prints a token for the `agent` role.
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
    #[command(flatten)]
    plant: PlantArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub(crate) fn mcp(config: &crate::config::Config, args: McpArgs) -> anyhow::Result<ExitCode> {
    if args.plant.server.is_some() {
        anyhow::bail!(
            "--server: an `aifactory serve` already serves MCP at <server>/mcp; point the MCP client there with a token"
        );
    }
    let runtime = crate::setup::runtime()?;
    runtime.block_on(async move {
        let mut plant = args.plant.clone();
        if args.http.is_none() && plant.role == "operator" {
            // Over stdio the client is a program: it acts as the agent unless told otherwise.
            plant.role = "agent".to_owned();
        }
        let caller = plant.caller()?;
        // Over stdio, stdout carries the protocol: everything else goes to stderr.
        eprintln!("aifactory mcp: starting the plant …");
        let embedded = Embedded::start(config, &plant, &args.model).await?;
        match args.http {
            None => {
                use rmcp::ServiceExt;
                eprintln!(
                    "aifactory mcp: serving {} tools over stdio as {} ({})",
                    aifactory_agent::tools::catalogue().len(),
                    caller.user,
                    caller.role
                );
                let server =
                    aifactory_agent::mcp::McpServer::stdio(Arc::clone(&embedded.agent), caller)
                        .serve(rmcp::transport::io::stdio())
                        .await
                        .context("starting MCP over stdio")?;
                let _ = server.waiting().await;
            }
            Some(address) => {
                let token = {
                    let mut accounts = embedded
                        .state
                        .accounts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    // Kept in memory for this process only; it ends with it (or in 30 days).
                    accounts
                        .issue(
                            &caller.user,
                            aifactory_server::auth::Role::Agent,
                            aifactory_server::auth::TokenKind::Api,
                            now_ms(),
                            std::time::Duration::from_secs(30 * 86_400),
                        )
                        .token
                };
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening on {address}"))?;
                let bound = listener.local_addr().unwrap_or(address);
                println!("MCP (streamable HTTP) on http://{bound}/mcp");
                println!("token for the agent role: {token}");
                println!("stop with Ctrl-C");
                let router = aifactory_server::router(Arc::clone(&embedded.state));
                aifactory_server::serve(listener, router, async {
                    crate::setup::stop_requested().await;
                })
                .await
                .context("serving HTTP")?;
            }
        }
        embedded.stop().await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
