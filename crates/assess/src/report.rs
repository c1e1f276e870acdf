//! A self-contained HTML report of an assessment: no scripts, no external assets, readable
//! offline and printable for a dossier.

use crate::rules::Assessment;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const DEPTH: [&str; 4] = ["none", "AI scenario", "coordinated", "closed loop"];

/// The report page for `plant`.
pub fn html(plant: &str, assessment: &Assessment, ledger_head: &str) -> String {
    let mut page = String::new();
    let plant = escape(plant);
    // Writing to a String cannot fail.
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>AI-factory assessment — {plant}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.4rem;text-align:left;vertical-align:top}}\
         .tier{{font-size:2rem}}.missing{{color:#a40}}</style></head><body>\
         <h1>AI-factory assessment — {plant}</h1>\
         <p class=\"tier\">Tier <strong>{}</strong> of 3</p>\
         <p>Typical scenarios with live AI: {} of {} ({:.0} %). Machines streaming: {:.0} %.</p>",
        assessment.tier,
        assessment.scenarios_live,
        assessment.scenarios_total,
        100.0 * assessment.scenario_share,
        100.0 * assessment.streaming_share
    );
    page.push_str(
        "<h2>Stages</h2><table><tr><th>Stage</th><th>Depth</th><th>Decisions</th>\
         <th>Executed (auto)</th><th>With outcome</th><th>Evidence</th><th>Missing for next depth</th></tr>",
    );
    for s in &assessment.stages {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{} — {}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td class=\"missing\">{}</td></tr>",
            s.stage,
            s.depth,
            DEPTH[usize::from(s.depth.min(3))],
            s.decisions,
            s.executed,
            s.executed_auto,
            s.with_outcome,
            s.evidence
                .iter()
                .map(|e| escape(e))
                .collect::<Vec<_>>()
                .join("<br>"),
            s.missing
                .iter()
                .map(|e| escape(e))
                .collect::<Vec<_>>()
                .join("<br>"),
        );
    }
    page.push_str(
        "</table><h2>Links of the shared plan</h2><table><tr><th>Link</th><th>Citations</th></tr>",
    );
    for l in &assessment.links {
        let _ = write!(
            page,
            "<tr><td>{} — {}</td><td>{}</td></tr>",
            escape(&l.id),
            escape(&l.description),
            l.citations
        );
    }
    page.push_str("</table><h2>Missing for the next tier</h2><ul>");
    if assessment.missing_for_next_tier.is_empty() {
        page.push_str("<li>Nothing: tier 3 is the top.</li>");
    }
    for m in &assessment.missing_for_next_tier {
        let _ = write!(page, "<li class=\"missing\">{}</li>", escape(m));
    }
    let _ = write!(
        page,
        "</ul><p><small>Ledger head {}</small></p></body></html>",
        escape(ledger_head)
    );
    page
}
