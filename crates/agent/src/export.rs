//! Conversations, tool traces and what became of them, as fine-tuning data in the OpenAI chat
//! JSONL format (`{"messages": [...], "tools": [...]}` per line), with personal data and secrets
//! taken out: the raw material of an industry model trained on the plant's own work.

use crate::provider::wire_tool;
use aifactory_store::{AuditEntry, Store, StoreError};
use regex::Regex;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportStats {
    /// Conversations written, one line each.
    pub conversations: usize,
    /// Conversations left out: no answer (cut short) or nothing but a question.
    pub skipped: usize,
    /// Personal data and secrets replaced.
    pub redactions: usize,
}

fn re(pattern: &str) -> Regex {
    // Constant patterns of this file; the tests compile every one.
    Regex::new(pattern).unwrap_or_else(|e| panic!("export pattern {pattern}: {e}"))
}

/// (pattern, replacement), applied in order: the longer, more specific shapes first.
static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        (
            re(r"(?i)\b(password|passwd|pwd|token|api[_-]?key|secret)(\s*[:=]\s*)\S+"),
            "$1$2[secret]",
        ),
        (re(r"(密码|口令|令牌)(\s*[:=：]\s*)\S+"), "$1$2[secret]"),
        (
            re(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
            "Bearer [secret]",
        ),
        (re(r"\bsk-[A-Za-z0-9_-]{12,}"), "[secret]"),
        (re(r"(?i)\b[0-9a-f]{32,}\b"), "[secret]"),
        (
            re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
            "[email]",
        ),
        (re(r"\b\d{17}[\dXx]\b"), "[id-number]"),
        (re(r"(?:\+?86[- ]?)?\b1[3-9]\d{9}\b"), "[phone]"),
        (re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "[ip]"),
    ]
});

/// Takes personal data and secrets out of `text`; `people` are user names to replace.
pub fn redact(text: &str, people: &[Regex]) -> (String, usize) {
    let mut out = text.to_owned();
    let mut count = 0;
    let rules = RULES.iter().map(|(p, r)| (p, *r));
    for (pattern, replacement) in rules.chain(people.iter().map(|p| (p, "[user]"))) {
        let n = pattern.find_iter(&out).count();
        if n > 0 {
            count += n;
            out = pattern.replace_all(&out, replacement).into_owned();
        }
    }
    (out, count)
}

/// Patterns for the user names in the records, skipping names that are also role names.
fn people_patterns(names: &BTreeSet<String>) -> Vec<Regex> {
    names
        .iter()
        .filter(|n| {
            n.chars().count() >= 2 && !crate::policy::ROLES.contains(&n.as_str()) && *n != "policy"
        })
        .filter_map(|n| Regex::new(&format!(r"\b{}\b", regex::escape(n))).ok())
        .collect()
}

/// Redacts every string inside a JSON value.
fn redact_value(v: &mut Value, people: &[Regex], count: &mut usize) {
    match v {
        Value::String(s) => {
            let (r, n) = redact(s, people);
            *count += n;
            *s = r;
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, people, count)),
        Value::Object(m) => m.values_mut().for_each(|x| redact_value(x, people, count)),
        _ => {}
    }
}

/// The export of the last `limit` audit entries' conversations, one JSON line each.
pub async fn export(store: &Store, limit: u32) -> Result<(Vec<String>, ExportStats), StoreError> {
    let entries = store.audit(None, limit).await?;
    let mut by_conversation: BTreeMap<String, Vec<AuditEntry>> = BTreeMap::new();
    let mut people = BTreeSet::new();
    for e in entries {
        people.insert(e.user.clone());
        by_conversation
            .entry(e.conversation.clone())
            .or_default()
            .push(e);
    }
    let actions = store.actions(None, u32::MAX).await?;
    for a in &actions {
        people.insert(a.requested_by.clone());
        if let Some(d) = &a.decided_by {
            people.insert(d.clone());
        }
    }
    let status: BTreeMap<String, (String, Option<String>)> = actions
        .into_iter()
        .map(|a| (a.id, (a.status, a.result)))
        .collect();
    let people = people_patterns(&people);
    let tools: Vec<Value> = crate::tools::catalogue().iter().map(wire_tool).collect();
    let mut stats = ExportStats::default();
    let mut lines = Vec::new();
    for (_, mut steps) in by_conversation {
        steps.sort_by_key(|e| e.step);
        match conversation(&steps, &status) {
            Some(messages) => {
                let mut line = json!({ "messages": messages, "tools": tools });
                redact_value(&mut line["messages"], &people, &mut stats.redactions);
                lines.push(line.to_string());
                stats.conversations += 1;
            }
            None => stats.skipped += 1,
        }
    }
    Ok((lines, stats))
}

/// The chat messages of one audited conversation, or `None` where it has no question and
/// answer (a direct tool call, an approval, a request cut short).
fn conversation(
    steps: &[AuditEntry],
    status: &BTreeMap<String, (String, Option<String>)>,
) -> Option<Vec<Value>> {
    let content = |e: &AuditEntry| serde_json::from_str::<Value>(&e.content).unwrap_or(Value::Null);
    let question = steps.iter().find(|e| e.kind == "question").map(content)?;
    let answer = steps.iter().find(|e| e.kind == "answer").map(content)?;
    let mut messages = vec![
        json!({ "role": "system", "content": crate::runtime::SYSTEM_PROMPT }),
        json!({ "role": "user", "content": question["text"] }),
    ];
    let mut calls: Vec<Value> = Vec::new();
    let mut results: Vec<Value> = Vec::new();
    let flush = |messages: &mut Vec<Value>, calls: &mut Vec<Value>, results: &mut Vec<Value>| {
        if !calls.is_empty() {
            messages.push(json!({ "role": "assistant", "content": null, "tool_calls": std::mem::take(calls) }));
            messages.append(results);
        }
    };
    for e in steps {
        let c = content(e);
        match e.kind.as_str() {
            "tool_call" => {
                if !results.is_empty() {
                    flush(&mut messages, &mut calls, &mut results);
                }
                calls.push(json!({
                    "id": c["call_id"],
                    "type": "function",
                    "function": { "name": c["tool"], "arguments": c["arguments"].to_string() },
                }));
            }
            "tool_result" => {
                let mut outcome = c["outcome"].clone();
                // What became of a held action: the outcome a model should learn from.
                if let Some(id) = outcome["action"].as_str()
                    && let Some((s, result)) = status.get(id)
                {
                    outcome["final_status"] = Value::from(s.as_str());
                    if let Some(r) = result {
                        outcome["effect"] = serde_json::from_str(r).unwrap_or(Value::Null);
                    }
                }
                results.push(json!({ "role": "tool", "tool_call_id": c["call_id"], "content": outcome.to_string() }));
            }
            _ => {}
        }
    }
    flush(&mut messages, &mut calls, &mut results);
    messages.push(json!({ "role": "assistant", "content": answer["text"] }));
    Some(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_and_secrets_are_replaced() {
        let people = people_patterns(
            &["ana.li".to_owned(), "admin".to_owned()]
                .into_iter()
                .collect(),
        );
        let (text, n) = redact(
            "ana.li (ana@plant.cn, +86 13812345678, ID 33010619900101123X) on 10.0.0.7 used key sk-abcdef0123456789XYZ, \
             Bearer eyJhbGciOiJIUzI1NiJ9.payload, password: hunter2, 密码：abc123, token 0123456789abcdef0123456789abcdef; admin approves",
            &people,
        );
        for secret in [
            "ana@plant.cn",
            "13812345678",
            "33010619900101123X",
            "10.0.0.7",
            "sk-abcdef",
            "eyJhbG",
            "hunter2",
            "abc123",
            "0123456789abcdef0123",
            "ana.li",
        ] {
            assert!(!text.contains(secret), "{secret} left in: {text}");
        }
        assert!(
            text.contains("admin approves"),
            "a role name is not a person: {text}"
        );
        assert!(n >= 10, "{n}: {text}");
        let (plain, n) = redact("TURN-01 vibration 3.4 mm/s at 2026-11-29", &people);
        assert_eq!(
            (plain.as_str(), n),
            ("TURN-01 vibration 3.4 mm/s at 2026-11-29", 0)
        );
    }
}
