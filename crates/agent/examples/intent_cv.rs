//! Cross-validation of the offline planner's intent model on its own training paraphrases,
//! holding out whole templates, so that the model can be tuned without any evaluation set.
//!
//! ```text
//! data/intents.tsv ─▶ k folds of templates ─▶ train on k-1 ─▶ classify the held-out fold's sentences
//! ```
//!
//! `cargo run -p aifactory-agent --release --example intent_cv -- [folds] [--misses]
//! [--ask] (requests on stdin, one a line) [--dump] (every training sentence)
//! [--epochs N] [--rate R] [--per-template N] [--seed N]`

use aifactory_agent::planner::intent::{
    Corpus, CrossValidation, IntentModel, Training, cross_validate,
};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let folds = args
        .first()
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(5);
    let show_misses = args.iter().any(|a| a == "--misses");
    if args.iter().any(|a| a == "--ask") {
        // One request a line on stdin: what the planner reads, the three likeliest intents,
        // and the plan, against the reference plant's names.
        let vocab = aifactory_agent::planner::intent::reference_vocabulary();
        for line in std::io::stdin().lines().map_while(Result::ok) {
            let (normalised, ranked) = aifactory_agent::planner::intents(&line, &vocab);
            let top: Vec<String> = ranked
                .iter()
                .take(3)
                .map(|(i, p)| format!("{} {p:.2}", i.name()))
                .collect();
            let plan = serde_json::to_string(&aifactory_agent::planner::plan(&line, &vocab))
                .unwrap_or_default();
            println!("{line}\n    {normalised}  [{}]\n    {plan}", top.join(", "));
        }
        return;
    }
    let corpus = Corpus::builtin();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|k| args.get(k + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let defaults = Training::default();
    let training = Training {
        epochs: flag("--epochs").map_or(defaults.epochs, |v| v as usize),
        rate: flag("--rate").map_or(defaults.rate, |v| v as f32),
        per_template: flag("--per-template").map_or(defaults.per_template, |v| v as usize),
        seed: flag("--seed").map_or(defaults.seed, |v| v as u64),
    };
    let examples = corpus.examples(training.per_template);
    if args.iter().any(|a| a == "--dump") {
        // Every training sentence: intent, language, sentence, what the model reads.
        for e in &examples {
            println!(
                "{}\t{:?}\t{}\t{}",
                e.intent.name(),
                e.lang,
                e.sentence,
                e.normalised
            );
        }
        return;
    }
    let t0 = Instant::now();
    let model = IntentModel::fit(&examples, &training);
    println!(
        "{} templates, {} sentences, {} features; training took {:.0} ms",
        corpus.templates.len(),
        examples.len(),
        model.features_known(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let cv = cross_validate(&corpus, folds, &training);
    println!(
        "{folds}-fold cross-validation, whole templates held out: English {}/{} ({:.1} %), Chinese {}/{} ({:.1} %)",
        cv.en.0,
        cv.en.1,
        100.0 * CrossValidation::accuracy(cv.en),
        cv.zh.0,
        cv.zh.1,
        100.0 * CrossValidation::accuracy(cv.zh)
    );
    if show_misses {
        for (sentence, expected, chosen, p) in &cv.misses {
            println!(
                "  {sentence}  — expected {}, chose {} ({p:.2})",
                expected.name(),
                chosen.name()
            );
        }
    }
}
