//! `aifactory token`: an admin's view of a running server's API tokens — list, issue, revoke —
//! through the same API routes and the same authorisation as everyone else.

use crate::agent::Remote;
use std::process::ExitCode;

/// Where the server is and who is asking.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// The running `aifactory serve`.
    #[arg(
        long,
        env = "AIFACTORY_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// An admin's API token (POST /api/v1/login as admin gives one).
    #[arg(long, env = "AIFACTORY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Every token the server keeps (logins' and programs'), newest first, with its state
    /// (active, expired, revoked); never a token's secret.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Issue an API token for a program (a dashboard, an MES, an agent); shown once.
    Issue {
        /// Who the token is for, e.g. grafana.
        user: String,
        /// viewer, operator, engineer, admin or agent.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Days until it expires (1 to 3650).
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by its id (tok-…): it stops working at once, and after a restart.
    Revoke {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn remote(args: &ServerArgs) -> anyhow::Result<Remote> {
    let token = args.token.clone().ok_or_else(|| {
        anyhow::anyhow!("--token (or AIFACTORY_TOKEN): an admin's token is needed to manage tokens")
    })?;
    Remote::new(&args.server, token)
}

fn print_tokens(tokens: &[serde_json::Value]) {
    println!(
        "{:<22} {:<16} {:<9} {:<6} {:<8} {:<25} {:<25}",
        "id", "user", "role", "kind", "state", "issued", "expires"
    );
    for t in tokens {
        let text = |k: &str| t[k].as_str().unwrap_or("-").to_owned();
        println!(
            "{:<22} {:<16} {:<9} {:<6} {:<8} {:<25} {:<25}",
            text("id"),
            text("user"),
            text("role"),
            text("kind"),
            text("state"),
            text("issued_at"),
            text("expires_at")
        );
    }
}

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    let runtime = crate::setup::runtime()?;
    runtime.block_on(async move {
        match command {
            TokenCommand::List { server } => {
                let answer = remote(&server)?
                    .send(reqwest::Method::GET, "/api/v1/tokens", None)
                    .await?;
                let tokens = answer["tokens"].as_array().cloned().unwrap_or_default();
                if server.json {
                    println!("{}", serde_json::Value::Array(tokens));
                } else {
                    print_tokens(&tokens);
                }
            }
            TokenCommand::Issue {
                user,
                role,
                days,
                server,
            } => {
                let body =
                    serde_json::json!({ "user": user, "role": role, "expires_in_days": days });
                let answer = remote(&server)?
                    .send(reqwest::Method::POST, "/api/v1/tokens", Some(body))
                    .await?;
                if server.json {
                    println!("{answer}");
                } else {
                    println!(
                        "token {} for {user} ({role}), expires {}:\n{}\n(shown once: keep it now)",
                        answer["id"].as_str().unwrap_or("?"),
                        answer["expires_at"].as_str().unwrap_or("?"),
                        answer["token"].as_str().unwrap_or("?")
                    );
                }
            }
            TokenCommand::Revoke { id, server } => {
                let answer = remote(&server)?
                    .send(
                        reqwest::Method::DELETE,
                        &format!("/api/v1/tokens/{id}"),
                        None,
                    )
                    .await?;
                if server.json {
                    println!("{answer}");
                } else {
                    println!("revoked {id}");
                }
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
