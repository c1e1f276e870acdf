//! `aifactory serve`: the HTTP API over a store, on a local address, until Ctrl-C.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The store: a SQLite file or a postgres:// URL [default: <data.dir>/demo.sqlite, the
    /// demo's database].
    #[arg(long, env = "AIFACTORY_DB")]
    db: Option<String>,
    /// The administrator's password [default: a random one, printed at start].
    #[arg(long, env = "AIFACTORY_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

pub(crate) fn run(config: &crate::config::Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let db = args
        .db
        .unwrap_or_else(|| config.data.dir.join("demo.sqlite").display().to_string());
    if !db.starts_with("postgres")
        && let Some(dir) = PathBuf::from(&db)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data folder {}", dir.display()))?;
    }
    let (password, generated) = match args.admin_password {
        Some(p) if p.len() >= 8 => (p, false),
        Some(_) => anyhow::bail!("--admin-password must be at least 8 characters"),
        None => (
            aifactory_server::auth::random_secret()[..20].to_owned(),
            true,
        ),
    };
    let mut accounts = aifactory_server::auth::Accounts::new();
    accounts
        .add_user("admin", &password, aifactory_server::auth::Role::Admin)
        .context("setting up the administrator")?;
    let runtime = crate::runtime()?;
    runtime.block_on(async move {
        let store = aifactory_store::Store::open(&db)
            .await
            .with_context(|| format!("opening the store {db}"))?;
        let started = std::time::Instant::now();
        let state = aifactory_server::AppState::new(
            store,
            accounts,
            Arc::new(move || started.elapsed()),
        );
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener.local_addr().unwrap_or(args.listen);
        println!("aifactory API on http://{address} (store {db})");
        if generated {
            println!("log in as admin with password {password} (printed once; set --admin-password to choose)");
        }
        println!("try: curl -s -X POST http://{address}/api/v1/login -H 'content-type: application/json' -d '{{\"username\":\"admin\",\"password\":\"…\"}}'");
        axum_serve(listener, aifactory_server::router(state)).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    app: aifactory_server::Router,
) -> anyhow::Result<()> {
    aifactory_server::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving HTTP")
}
