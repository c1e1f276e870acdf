//! `aifactory bench login`: what failed and concurrent logins cost a running server. The
//! server is `aifactory serve --no-twin` in its own process on a loopback port; the clients
//! come from many loopback addresses (127.0.0.0/8), so the per-address limiter sees them as
//! different clients.
//!
//! 1. Memory: the server's resident memory before and after each of `--rounds` rounds of
//!    `--failures` failed logins with `--name-kb` KB names: it must stay flat.
//! 2. Latency: login p50/p99 under `--concurrency` logins at once, while pollers read
//!    `/api/v1/telemetry/latest`; its throughput with and without the logins, side by side.

use anyhow::Context;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct LoginBenchArgs {
    /// Failed logins per round of the memory check (RSS after each round).
    #[arg(long, default_value_t = 10_000)]
    failures: usize,
    /// Rounds of failed logins.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Size of each failed login's user name, in KB (the body limit is 64 KB).
    #[arg(long, default_value_t = 60)]
    name_kb: usize,
    /// Loopback addresses the failed logins come from.
    #[arg(long, default_value_t = 200)]
    addresses: u32,
    /// Logins at once in the latency phase.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Clients polling the latest values throughout.
    #[arg(long, default_value_t = 4)]
    pollers: usize,
    /// Seconds each latency phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long)]
    json: bool,
}

const PASSWORD: &str = "bench-admin-password";

/// The `n`-th loopback client address, skipping 127.0.0.1 (the pollers').
fn client(n: u32) -> IpAddr {
    let n = n % (254 * 254);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (n / 254) as u8,
        0,
        1 + (n % 254) as u8,
    ))
}

fn http_from(address: IpAddr) -> anyhow::Result<reqwest::Client> {
    aifactory_agent::provider::install_tls_crypto();
    reqwest::Client::builder()
        .local_address(address)
        .timeout(Duration::from_secs(120))
        .build()
        .context("starting an HTTP client")
}

/// `aifactory serve --no-twin` in a process of its own (so its memory is its own), on a
/// loopback port, over a store with an admin and some telemetry; stopped when dropped.
struct Server {
    base: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> anyhow::Result<Server> {
        use std::io::BufRead;
        let dir = tempfile::tempdir().context("a temporary folder")?;
        let db = dir.path().join("bench-login.sqlite").display().to_string();
        {
            let store = aifactory_store::Store::open(&db)
                .await
                .context("opening the store")?;
            // 200 series' latest values, so the polled route has real work.
            let now = crate::agent::now_ms();
            let messages = (0..200)
                .map(|i| aifactory_store::ingest::IngestMessage {
                    key: Some([u8::try_from(i % 256).unwrap_or(0); 16]),
                    samples: (0..10)
                        .map(|k| aifactory_store::ingest::Sample {
                            series: aifactory_store::ingest::SeriesName::new(
                                "bench",
                                "line",
                                format!("M-{:03}", i / 4),
                                format!("signal_{}", i % 4),
                            ),
                            at_ms: now - 10_000 + k * 1_000,
                            value: f64::from(i) + k as f64,
                        })
                        .collect(),
                    others: Vec::new(),
                })
                .collect();
            store
                .commit_ingest(
                    &aifactory_store::ingest::IngestBatch {
                        messages,
                        quarantined: Vec::new(),
                    },
                    now,
                )
                .await
                .context("storing telemetry")?;
        }
        let exe = std::env::current_exe().context("finding this program")?;
        let mut child = std::process::Command::new(exe)
            .args(["serve", "--no-twin", "--listen", "127.0.0.1:0", "--db", &db])
            .args(["--admin-password", PASSWORD])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting aifactory serve")?;
        let stdout = child.stdout.take().context("serve's output")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .context("serve stopped before it listened")?
                .context("reading serve's output")?;
            if let Some(rest) = line.strip_prefix("aifactory on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server {
            base,
            child,
            _dir: dir,
        })
    }

    /// The server's resident memory, in KiB (Linux), from /proc.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = http
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({ "username": name, "password": password }))
        .send()
        .await
        .context("logging in")?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or_default()))
}

/// Sends `count` failed logins with huge names from `addresses` addresses, 16 at a time;
/// answers by status.
async fn failed_logins(
    base: &str,
    count: usize,
    name_bytes: usize,
    addresses: u32,
    round: usize,
) -> anyhow::Result<std::collections::BTreeMap<u16, u64>> {
    // Fresh addresses each round, so every round meets the limiter the same way.
    let first = u32::try_from(round).unwrap_or(0).saturating_mul(addresses);
    let clients: Vec<reqwest::Client> = (0..addresses.max(1))
        .map(|n| http_from(client(first + n)))
        .collect::<anyhow::Result<_>>()?;
    let mut by_status = std::collections::BTreeMap::new();
    let bar = indicatif::ProgressBar::new(count as u64).with_message("failed logins");
    for batch in (0..count).collect::<Vec<_>>().chunks(16) {
        let mut calls = tokio::task::JoinSet::new();
        for &i in batch {
            let http = clients[i % clients.len()].clone();
            let base = base.to_owned();
            let mut name = format!("r{round}-{i}-");
            name.push_str(&"x".repeat(name_bytes.saturating_sub(name.len())));
            calls.spawn(async move { login(&http, &base, &name, "wrong").await });
        }
        while let Some(answer) = calls.join_next().await {
            *by_status
                .entry(answer.context("a login task stopped")??.0)
                .or_insert(0) += 1;
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    Ok(by_status)
}

/// Polls the latest values until `stop`; how many answered.
async fn poll_latest(base: String, token: String, stop: Arc<AtomicBool>) -> anyhow::Result<u64> {
    let http = http_from(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let response = http
            .get(format!("{base}/api/v1/telemetry/latest"))
            .bearer_auth(&token)
            .send()
            .await
            .context("reading the latest values")?;
        anyhow::ensure!(
            response.status().is_success(),
            "latest: {}",
            response.status()
        );
        let _ = response.bytes().await;
        n += 1;
    }
    Ok(n)
}

struct Phase {
    latest_per_s: f64,
    login_ms: Vec<f64>,
}

/// Runs the pollers for `seconds`, with `logins` login loops beside them.
async fn phase(
    base: &str,
    token: &str,
    args: &LoginBenchArgs,
    logins: usize,
) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = (0..args.pollers)
        .map(|_| {
            tokio::spawn(poll_latest(
                base.to_owned(),
                token.to_owned(),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let failures = Arc::new(AtomicU64::new(0));
    let loopers: Vec<_> = (0..logins)
        .map(|i| {
            let (base, stop, failures) =
                (base.to_owned(), Arc::clone(&stop), Arc::clone(&failures));
            tokio::spawn(async move {
                let http = http_from(client(60_000 + u32::try_from(i).unwrap_or(0)))?;
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let (status, _) = login(&http, &base, "admin", PASSWORD).await?;
                    times.push(started.elapsed().as_secs_f64() * 1e3);
                    if status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(times)
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for p in pollers {
        answered += p.await.context("a poller stopped")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut login_ms = Vec::new();
    for l in loopers {
        login_ms.extend(l.await.context("a login loop stopped")??);
    }
    anyhow::ensure!(
        failures.load(Ordering::Relaxed) == 0,
        "{} logins with the right password were refused",
        failures.load(Ordering::Relaxed)
    );
    login_ms.sort_by(f64::total_cmp);
    Ok(Phase {
        latest_per_s: answered as f64 / elapsed,
        login_ms,
    })
}

pub(crate) fn run(args: &LoginBenchArgs) -> anyhow::Result<ExitCode> {
    if args.name_kb == 0 || args.name_kb > 63 {
        anyhow::bail!("--name-kb must be between 1 and 63 (the body limit is 64 KB)");
    }
    let runtime = crate::setup::runtime()?;
    let report = runtime.block_on(async {
        let server = Server::start().await?;
        let http = http_from(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let (status, body) = login(&http, &server.base, "admin", PASSWORD).await?;
        anyhow::ensure!(status == 200, "the admin's login failed: {status} {body}");
        let token = body["token"].as_str().context("a token")?.to_owned();

        // 1. Memory under failed logins with huge names: a short round first, so what the
        // server allocates once (connections, buffers) is in the baseline.
        eprintln!(
            "memory: {} rounds of {} failed logins with {} KB names …",
            args.rounds, args.failures, args.name_kb
        );
        let bytes = args.name_kb * 1024;
        failed_logins(
            &server.base,
            args.addresses as usize,
            bytes,
            args.addresses,
            0,
        )
        .await?;
        let rss_before = server.rss_kib();
        let mut rounds = Vec::new();
        for round in 1..=args.rounds.max(1) {
            let answers =
                failed_logins(&server.base, args.failures, bytes, args.addresses, round).await?;
            rounds.push(serde_json::json!({ "answers": answers, "rss_kib": server.rss_kib() }));
        }

        // 2. Latency with and without concurrent logins, side by side.
        eprintln!(
            "latency: {} s of polling alone, then {} s with {} logins at once …",
            args.seconds, args.seconds, args.concurrency
        );
        let alone = phase(&server.base, &token, args, 0).await?;
        let with = phase(&server.base, &token, args, args.concurrency).await?;
        anyhow::Ok(serde_json::json!({
            "failed_logins": {
                "per_round": args.failures,
                "name_kb": args.name_kb,
                "addresses": args.addresses,
                "rss_kib_before": rss_before,
                "rounds": rounds,
            },
            "concurrent_logins": {
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "logins": with.login_ms.len(),
                "login_ms_p50": crate::bench_agent::percentile(&with.login_ms, 0.50),
                "login_ms_p99": crate::bench_agent::percentile(&with.login_ms, 0.99),
                "latest_per_s_alone": alone.latest_per_s,
                "latest_per_s_with_logins": with.latest_per_s,
                "latest_ratio": with.latest_per_s / alone.latest_per_s,
            },
        }))
    })?;
    if args.json {
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    let f = &report["failed_logins"];
    let c = &report["concurrent_logins"];
    let rss: Vec<String> = f["rounds"]
        .as_array()
        .map(|r| r.iter().map(|x| x["rss_kib"].to_string()).collect())
        .unwrap_or_default();
    println!(
        "failed logins ({} per round, {} KB names, {} fresh addresses a round): server RSS {} KiB before, then {} KiB after each round",
        f["per_round"],
        f["name_kb"],
        f["addresses"],
        f["rss_kib_before"],
        rss.join(", ")
    );
    if let Some(r) = f["rounds"].as_array() {
        for (n, round) in r.iter().enumerate() {
            println!("  round {}: answers {}", n + 1, round["answers"]);
        }
    }
    println!(
        "{} logins at once for {} s: {} logins, p50 {:.1} ms, p99 {:.1} ms",
        c["concurrency"],
        c["seconds"],
        c["logins"],
        c["login_ms_p50"].as_f64().unwrap_or(f64::NAN),
        c["login_ms_p99"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "/api/v1/telemetry/latest: {:.0} req/s alone, {:.0} req/s beside the logins ({:.2}×)",
        c["latest_per_s_alone"].as_f64().unwrap_or(f64::NAN),
        c["latest_per_s_with_logins"].as_f64().unwrap_or(f64::NAN),
        c["latest_ratio"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(ExitCode::SUCCESS)
}
