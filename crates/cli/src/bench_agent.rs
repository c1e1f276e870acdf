//! `aifactory bench agent`: the offline planner's tool choice on the 50 plant questions and tasks
//! of `bench/agent_questions.tsv` (English and Chinese), end-to-end latency of each request
//! through the runtime on a live twin, and the runtime's overhead per tool step (policy, audit
//! log, result envelope) against calling the same tool directly — no model involved.

use aifactory_agent::Caller;
use aifactory_agent::tools::PlantTools;
use anyhow::Context;
use std::process::ExitCode;
use std::time::Instant;

/// The question set, built in so the benchmark runs from any folder.
const QUESTIONS: &str = include_str!("../../../bench/agent_questions.tsv");

#[derive(Debug, clap::Args)]
pub(crate) struct AgentBenchArgs {
    /// Repetitions of each tool call for the per-step overhead.
    #[arg(long, default_value_t = 200)]
    repeat: usize,
    /// Days the twin runs before the questions (so there is history to answer from).
    #[arg(long, default_value_t = 1.0)]
    warm_up_days: f64,
    /// Another question set in the same layout (lang, expected tool, expected machine or -,
    /// question; tab-separated), e.g. bench/agent_questions_heldout.tsv [default: the built-in
    /// 50 of bench/agent_questions.tsv].
    #[arg(long)]
    questions: Option<std::path::PathBuf>,
    #[arg(long)]
    json: bool,
}

struct Question {
    lang: String,
    tool: String,
    machine: Option<String>,
    text: String,
}

fn questions() -> anyhow::Result<Vec<Question>> {
    parse_questions("bench/agent_questions.tsv", QUESTIONS)
}

fn parse_questions(source: &str, text: &str) -> anyhow::Result<Vec<Question>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(n, l)| {
            let cols: Vec<&str> = l.split('\t').collect();
            let [lang, tool, machine, text] = cols[..] else {
                anyhow::bail!("{source}:{}: want 4 tab-separated columns", n + 1);
            };
            Ok(Question {
                lang: lang.to_owned(),
                tool: tool.to_owned(),
                machine: (machine != "-").then(|| machine.to_owned()),
                text: text.to_owned(),
            })
        })
        .collect()
}

/// The nearest-rank percentile `p` (0 to 1) of sorted values; NaN for none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

pub(crate) fn run(
    config: &crate::config::Config,
    args: &AgentBenchArgs,
) -> anyhow::Result<ExitCode> {
    if !(1..=100_000).contains(&args.repeat) {
        anyhow::bail!("--repeat must be 1 to 100000");
    }
    let questions = match &args.questions {
        None => questions()?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the question set {}", path.display()))?;
            parse_questions(&path.display().to_string(), &text)?
        }
    };
    if questions.is_empty() {
        anyhow::bail!("the question set has no questions");
    }
    let dir = tempfile::tempdir().context("a temporary folder for the store")?;
    let db = dir.path().join("bench-agent.sqlite").display().to_string();
    let runtime = crate::setup::runtime()?;
    runtime.block_on(async move {
        let plant = crate::agent::PlantArgs::embedded(&db, args.warm_up_days);
        let embedded = crate::agent::Embedded::start(config, &plant, &crate::agent::ModelArgs::default()).await?;
        let caller = Caller::new("bench", "operator");
        let mut rows = Vec::new();
        for q in &questions {
            let t0 = Instant::now();
            let answer = embedded.agent.ask(&caller, "bench", &q.text).await?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let chosen = answer.steps.first().map_or("none".to_owned(), |s| s.tool.clone());
            let machine = answer
                .steps
                .first()
                .and_then(|s| s.arguments["machine"].as_str().map(str::to_owned));
            let right = chosen == q.tool && q.machine.as_ref().is_none_or(|m| Some(m) == machine.as_ref());
            rows.push(serde_json::json!({
                "lang": q.lang, "question": q.text, "expected": q.tool, "chosen": chosen,
                "expected_machine": q.machine, "machine": machine, "right": right, "ms": ms,
                "outcome": answer.steps.first().map(|s| serde_json::to_value(&s.outcome).map(|v| v["outcome"].clone()).unwrap_or_default()),
            }));
        }
        let score = |lang: Option<&str>| {
            let picked: Vec<&serde_json::Value> = rows.iter().filter(|r| lang.is_none_or(|l| r["lang"] == l)).collect();
            let right = picked.iter().filter(|r| r["right"] == true).count();
            (right, picked.len())
        };
        let mut latency: Vec<f64> = rows.iter().filter_map(|r| r["ms"].as_f64()).collect();
        latency.sort_by(f64::total_cmp);

        // Overhead per step: the runtime's call (policy, audit rows, envelope) against the
        // tool called directly on the same plant, same arguments, alternating.
        let host = aifactory_server::agent::PlantAccess::new(&embedded.state);
        let calls: [(&str, serde_json::Value); 4] = [
            ("query_kpis", serde_json::json!({})),
            ("plant_status", serde_json::json!({})),
            ("list_orders", serde_json::json!({ "status": "open" })),
            ("query_telemetry", serde_json::json!({ "machine": "TURN-01", "hours": 1 })),
        ];
        let mut overhead = Vec::new();
        for (tool, arguments) in &calls {
            let (mut direct, mut via) = (Vec::new(), Vec::new());
            for _ in 0..args.repeat {
                let t0 = Instant::now();
                host.call(&caller, "bench", tool, arguments, None, None).await.map_err(|e| anyhow::anyhow!("{tool}: {e}"))?;
                direct.push(t0.elapsed().as_secs_f64() * 1e3);
                let t0 = Instant::now();
                embedded.agent.call_tool(&caller, "bench", tool, arguments.clone()).await?;
                via.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            let (d, v) = (median(direct), median(via));
            overhead.push(serde_json::json!({ "tool": tool, "direct_ms": d, "through_runtime_ms": v, "overhead_ms": v - d }));
        }
        embedded.stop().await?;
        let (right, total) = score(None);
        let (en, en_n) = score(Some("en"));
        let (zh, zh_n) = score(Some("zh"));
        let report = serde_json::json!({
            "questions": total,
            "accuracy": right as f64 / total as f64,
            "accuracy_en": en as f64 / en_n.max(1) as f64,
            "accuracy_zh": zh as f64 / zh_n.max(1) as f64,
            "latency_ms": { "p50": percentile(&latency, 0.5), "p95": percentile(&latency, 0.95), "max": latency.last() },
            "overhead_per_step": overhead,
            "rows": rows,
        });
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("offline planner, {total} questions: tool choice {right}/{total} right ({:.0} %): English {en}/{en_n}, Chinese {zh}/{zh_n}", 100.0 * right as f64 / total as f64);
            println!("end-to-end per request (runtime + tools + audit, live twin): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms", percentile(&latency, 0.5), percentile(&latency, 0.95), latency.last().copied().unwrap_or(f64::NAN));
            for r in rows.iter().filter(|r| r["right"] != true) {
                println!("  missed [{}] {} — expected {} {}, chose {} {}", r["lang"].as_str().unwrap_or(""), r["question"].as_str().unwrap_or(""), r["expected"].as_str().unwrap_or(""), r["expected_machine"].as_str().unwrap_or(""), r["chosen"].as_str().unwrap_or(""), r["machine"].as_str().unwrap_or(""));
            }
            println!("overhead per step (median of {} calls, runtime minus the tool alone):", args.repeat);
            for o in &overhead {
                println!("  {:<16} tool {:>7.3} ms, through the runtime {:>7.3} ms, overhead {:>6.3} ms", o["tool"].as_str().unwrap_or(""), o["direct_ms"].as_f64().unwrap_or(f64::NAN), o["through_runtime_ms"].as_f64().unwrap_or(f64::NAN), o["overhead_ms"].as_f64().unwrap_or(f64::NAN));
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_question_set_row_without_four_columns_is_named_by_file_and_line() {
        let err = super::parse_questions(
            "q.tsv",
            "# header\nen\tplant_status\t-\tok\nen\tquery_kpis\n",
        )
        .err()
        .expect("the third line has two columns");
        assert_eq!(err.to_string(), "q.tsv:3: want 4 tab-separated columns");
    }

    #[test]
    fn the_held_out_question_set_parses_half_chinese_with_real_tools() {
        let text = include_str!("../../../bench/agent_questions_heldout.tsv");
        let q = super::parse_questions("heldout", text).expect("parses");
        assert!(q.len() >= 60, "{}", q.len());
        assert_eq!(q.iter().filter(|q| q.lang == "zh").count() * 2, q.len());
        let tools: Vec<&str> = aifactory_agent::tools::catalogue()
            .iter()
            .map(|t| t.name)
            .collect();
        assert!(q.iter().all(|q| tools.contains(&q.tool.as_str())));
    }

    #[test]
    fn the_question_set_has_fifty_rows_in_both_languages_naming_real_tools() {
        let q = super::questions().expect("parses");
        assert_eq!(q.len(), 50);
        assert_eq!(q.iter().filter(|q| q.lang == "zh").count(), 25);
        let tools: Vec<&str> = aifactory_agent::tools::catalogue()
            .iter()
            .map(|t| t.name)
            .collect();
        for t in aifactory_agent::tools::catalogue() {
            assert!(
                q.iter().any(|q| q.tool == t.name),
                "{} is asked about",
                t.name
            );
        }
        assert!(q.iter().all(|q| tools.contains(&q.tool.as_str())));
    }
}
