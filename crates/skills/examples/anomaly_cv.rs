//! Compares multivariate detector settings on labelled folders (the layout of
//! `aifactory eval anomaly`), for choosing the defaults on tuning seeds only.
//!
//! ```text
//! cargo run --release -p aifactory-skills --example anomaly_cv -- DIR [SETTINGS_JSON ...]
//! ```
//!
//! Each SETTINGS_JSON is an object over `MultivariateConfig::default()` (`{}` for the defaults,
//! `"univariate"` for the per-signal baseline). For each it prints the overall metrics at the
//! detector's alarm level and the oracle figures, one line per setting.

use aifactory_skills::anomaly::AnomalyConfig;
use aifactory_skills::anomaly_eval::{self, Detector, EvalOptions};
use aifactory_skills::multivariate::MultivariateConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: anomaly_cv DIR [SETTINGS_JSON ...]")?;
    let share: f64 = std::env::var("TRAIN_SHARE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(anomaly_eval::DEFAULT_TRAIN_SHARE);
    let files = anomaly_eval::read_folder(std::path::Path::new(&dir))?;
    let mut settings: Vec<String> = args.collect();
    if settings.is_empty() {
        settings.push("{}".into());
    }
    let options = EvalOptions {
        train_share: share,
        ..EvalOptions::default()
    };
    if let Ok(name) = std::env::var("DUMP_FILE") {
        // One file's rows with their regime, score and each statistic's tail probability.
        let f = files
            .iter()
            .find(|f| f.name == name)
            .ok_or("no such file")?;
        let mut value = serde_json::to_value(MultivariateConfig::default())?;
        let over: serde_json::Value = serde_json::from_str(&settings[0])?;
        if let (Some(v), Some(o)) = (value.as_object_mut(), over.as_object()) {
            for (k, x) in o {
                v.insert(k.clone(), x.clone());
            }
        }
        let config: MultivariateConfig = serde_json::from_value(value)?;
        let train = anomaly_eval::training_rows(&f.labels, share);
        let healthy: Vec<usize> = (0..train).filter(|&i| !f.labels[i]).collect();
        let rows: Vec<&[f64]> = healthy.iter().map(|&i| f.row(i)).collect();
        let stamps: Vec<_> = healthy.iter().map(|&i| f.timestamps[i]).collect();
        let mut d = config.fit(&stamps, &rows)?;
        eprintln!(
            "regimes {} retained {:?}",
            d.regimes(),
            d.retained_components()
        );
        println!("i,label,regime,score,p_t2,p_q,p_st2,p_sq,p_uni");
        for i in train..f.rows() {
            let score = d.update(f.timestamps[i], f.row(i));
            let (k, e) = d.evidence();
            println!(
                "{i},{},{k},{score:.4},{:.3e},{:.3e},{:.3e},{:.3e},{:.3e}",
                u8::from(f.labels[i]),
                e[0].1,
                e[1].1,
                e[2].1,
                e[3].1,
                e[4].1
            );
        }
        return Ok(());
    }
    for s in settings {
        let detector = if s == "univariate" {
            Detector::Univariate(AnomalyConfig::default())
        } else {
            let mut value = serde_json::to_value(MultivariateConfig::default())?;
            let over: serde_json::Value = serde_json::from_str(&s)?;
            if let (Some(v), Some(o)) = (value.as_object_mut(), over.as_object()) {
                for (k, x) in o {
                    v.insert(k.clone(), x.clone());
                }
            }
            Detector::Multivariate(serde_json::from_value(value)?)
        };
        let start = std::time::Instant::now();
        let scored = anomaly_eval::score_files(&files, &detector, share, &mut |_| {})?;
        let secs = start.elapsed().as_secs_f64();
        let r = anomaly_eval::report(&scored, &detector, &options);
        if std::env::var("PER_FILE").is_ok() {
            for fr in &r.files {
                if let Some(m) = &fr.metrics {
                    println!(
                        "    {:<20} FA {:>7.3}%  R {:.3}  events {}/{}  false alarms {}",
                        fr.file,
                        100.0 * m.false_alarm_rate.unwrap_or(0.0),
                        m.recall.unwrap_or(0.0),
                        m.events - m.events_missed,
                        m.events,
                        m.false_alarms
                    );
                } else {
                    println!("    {:<20} {:?}", fr.file, fr.skipped);
                }
            }
        }
        let m = &r.overall;
        let f = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.3}"));
        let nab: Vec<String> = m
            .nab
            .iter()
            .map(|n| f(n.normalised.map(|v| v / 100.0)))
            .collect();
        let oracle: Vec<String> = r
            .oracle
            .nab
            .iter()
            .map(|(_, t, v)| format!("{}@{t:.2}", f(v.map(|x| x / 100.0))))
            .collect();
        println!(
            "{s}\n  thr {:.2}  F1 {}  P {}  R {}  FA {:.4}%  events {}/{}  alarms {} (false {})  lead {} h  NAB {}  | oracle F1 {}@{:.2} NAB {}  [{secs:.1} s]",
            r.threshold,
            f(m.f1),
            f(m.precision),
            f(m.recall),
            100.0 * m.false_alarm_rate.unwrap_or(0.0),
            m.events - m.events_missed,
            m.events,
            m.alarms,
            m.false_alarms,
            f(m.median_lead_h),
            nab.join("/"),
            f(r.oracle.f1),
            r.oracle.f1_threshold,
            oracle.join(" "),
        );
    }
    Ok(())
}
