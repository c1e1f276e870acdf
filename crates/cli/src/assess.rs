//! `aifactory assess`: the plant's tier computed from its decision ledger and data coverage,
//! optionally written as a signed evidence bundle and an HTML report; `aifactory assess verify`
//! checks a bundle (signature, hash chain, recomputed tier).

use aifactory_assess::{Assessment, Coverage, EvidenceBundle, Ledger};
use aifactory_core::Timestamp;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AssessArgs {
    #[command(subcommand)]
    command: Option<AssessCommand>,
    /// The plant's store: a SQLite file (as written by `demo`, `sim --db`, `ingest`) or a
    /// postgres:// URL.
    #[arg(long, env = "AIFACTORY_DB")]
    db: Option<String>,
    /// The plant's id written into the evidence bundle.
    #[arg(long, default_value = "plant")]
    plant_id: String,
    /// Write a signed evidence bundle (JSON) here.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The plant's ed25519 signing key (64 hex digits); created on first use, readable by the
    /// owner only [default: aifactory-signing.key beside the SQLite file, or in the current
    /// folder].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Write the assessment as a self-contained HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum AssessCommand {
    /// Verify an evidence bundle: format, hash chain (naming the first edited row), signature,
    /// head, and the tier recomputed from its own ledger. Exit 0 only if all hold.
    Verify {
        /// The bundle file.
        bundle: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: AssessArgs) -> anyhow::Result<ExitCode> {
    if let Some(AssessCommand::Verify { bundle, json }) = &args.command {
        return verify(bundle, *json);
    }
    let db = args.db.clone().context(
        "--db is required: the store whose ledger to assess (or `assess verify BUNDLE`)",
    )?;
    let (ledger, coverage) = crate::setup::runtime()?.block_on(read_evidence(&db))?;
    let assessment = aifactory_assess::assess(ledger.entries(), &coverage);
    let head = ledger.head().to_owned();
    let entries = ledger.entries().len();
    let mut bundle_note = None;
    if let Some(path) = &args.bundle {
        let key_path = args.key.clone().unwrap_or_else(|| default_key_path(&db));
        let (key, created) = load_or_create_key(&key_path)?;
        let bundle = aifactory_assess::sign(
            &args.plant_id,
            now(),
            coverage.clone(),
            ledger.into_entries(),
            &key,
        )?;
        std::fs::write(path, serde_json::to_vec_pretty(&bundle)?)
            .with_context(|| format!("writing {}", path.display()))?;
        bundle_note = Some(format!(
            "evidence bundle {} signed with {}{} (public key {})",
            path.display(),
            key_path.display(),
            if created { ", created now" } else { "" },
            bundle.public_key
        ));
    }
    if let Some(path) = &args.html {
        std::fs::write(
            path,
            aifactory_assess::report::html(&args.plant_id, &assessment, &head),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let value = serde_json::json!({
            "plant": args.plant_id,
            "coverage": coverage,
            "ledger_head": head,
            "ledger_entries": entries,
            "assessment": assessment,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_assessment(&args.plant_id, &assessment, &coverage);
        // The head commits to every entry: kept elsewhere, it shows a later rewrite of the store.
        println!("\n  ledger: {entries} entries, the store's hash chain verified; head {head}");
        if let Some(note) = bundle_note {
            println!("\n{note}");
        }
        if let Some(path) = &args.html {
            println!("report {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn read_evidence(db: &str) -> anyhow::Result<(Ledger, Coverage)> {
    let store = aifactory_store::Store::open(db)
        .await
        .with_context(|| format!("opening the store {}", crate::setup::shown_location(db)))?;
    let evidence = aifactory_server::evidence::read(&store)
        .await
        .with_context(|| format!("reading the evidence in {db}"))?;
    store.close().await;
    Ok(evidence)
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn default_key_path(db: &str) -> PathBuf {
    let file = Path::new(db);
    match file.parent() {
        Some(dir) if !db.contains("://") && !dir.as_os_str().is_empty() => {
            dir.join("aifactory-signing.key")
        }
        _ => PathBuf::from("aifactory-signing.key"),
    }
}

/// Reads the 32-byte secret (hex) or creates one, owner-readable only.
fn load_or_create_key(path: &Path) -> anyhow::Result<(ed25519_dalek::SigningKey, bool)> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the signing key {}", path.display()))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| {
                format!(
                    "{}: a signing key is 64 hex digits (32 bytes)",
                    path.display()
                )
            })?;
        return Ok((aifactory_assess::signing_key(&bytes), false));
    }
    let secret: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the signing key {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{}\n", hex::encode(secret)).as_bytes())
        .with_context(|| format!("writing the signing key {}", path.display()))?;
    Ok((aifactory_assess::signing_key(&secret), true))
}

fn verify(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bundle: EvidenceBundle = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an evidence bundle", path.display()))?;
    let result = aifactory_assess::verify(&bundle);
    if json {
        let value = match &result {
            Ok(a) => serde_json::json!({
                "verified": true, "plant": bundle.plant, "tier": a.tier,
                "entries": bundle.ledger.len(), "public_key": bundle.public_key,
            }),
            Err(e) => serde_json::json!({ "verified": false, "error": e.to_string() }),
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    match result {
        Ok(a) => {
            if !json {
                println!(
                    "verified: {} is tier {} ({} ledger entries, signed by {})",
                    bundle.plant,
                    a.tier,
                    bundle.ledger.len(),
                    bundle.public_key
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if !json {
                eprintln!("error: {}: {e}", path.display());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

const DEPTH: [&str; 4] = ["none", "AI scenario", "coordinated", "closed loop"];

fn print_assessment(plant: &str, a: &Assessment, coverage: &Coverage) {
    println!("AI-factory assessment of {plant}: tier {} of 3\n", a.tier);
    println!(
        "  {:<11} {:<15} {:>9} {:>9} {:>8} {:>8}",
        "stage", "depth", "decisions", "executed", "auto", "outcome"
    );
    for s in &a.stages {
        println!(
            "  {:<11} {:<15} {:>9} {:>9} {:>8} {:>8}",
            s.stage.as_str(),
            format!("{} {}", s.depth, DEPTH[usize::from(s.depth.min(3))]),
            s.decisions,
            s.executed,
            s.executed_auto,
            s.with_outcome
        );
    }
    println!(
        "\n  typical scenarios with live AI: {} of {} ({:.0} %); machines streaming: {} of {}",
        a.scenarios_live,
        a.scenarios_total,
        100.0 * a.scenario_share,
        coverage.machines_streaming,
        coverage.machines
    );
    for l in &a.links {
        println!(
            "  link {:<24} {:>6} citations  ({})",
            l.id, l.citations, l.description
        );
    }
    if a.missing_for_next_tier.is_empty() {
        println!("\n  nothing missing: tier 3 is the top");
    } else {
        println!("\n  missing for tier {}:", a.tier + 1);
        for m in &a.missing_for_next_tier {
            println!("    - {m}");
        }
    }
}
