//! Models over the OpenAI-compatible chat-completions API: Qwen (DashScope's compatible mode),
//! DeepSeek, vLLM, Ollama or any base URL. Request and response types are our own and lenient
//! (unknown fields and finish reasons are kept, not fatal), because each vendor extends the
//! protocol a little.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// A known provider's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Alibaba Cloud DashScope, OpenAI-compatible mode.
    Qwen,
    DeepSeek,
    /// A vLLM server on the plant's own GPU.
    Vllm,
    /// An Ollama server on the plant's own machine.
    Ollama,
}

impl Preset {
    pub fn parse(name: &str) -> Option<Preset> {
        match name.to_ascii_lowercase().as_str() {
            "qwen" | "dashscope" => Some(Preset::Qwen),
            "deepseek" => Some(Preset::DeepSeek),
            "vllm" => Some(Preset::Vllm),
            "ollama" => Some(Preset::Ollama),
            _ => None,
        }
    }

    /// (base URL, model, environment variable holding the key).
    pub fn defaults(self) -> (&'static str, &'static str, Option<&'static str>) {
        match self {
            Preset::Qwen => (
                "https://dashscope.aliyuncs.com/compatible-mode/v1",
                "qwen-plus",
                Some("DASHSCOPE_API_KEY"),
            ),
            Preset::DeepSeek => (
                "https://api.deepseek.com/v1",
                "deepseek-chat",
                Some("DEEPSEEK_API_KEY"),
            ),
            Preset::Vllm => ("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct", None),
            Preset::Ollama => ("http://127.0.0.1:11434/v1", "qwen2.5:7b", None),
        }
    }
}

/// How to reach a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Up to and including `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub model: String,
    /// Never logged or audited.
    #[serde(default, skip_serializing)]
    pub api_key: Option<String>,
    /// Per model call, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Extra tries after a connection failure, a 429 or a 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Ask for a streamed answer (server-sent events).
    #[serde(default = "default_stream")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

fn default_timeout() -> f64 {
    60.0
}
fn default_retries() -> u32 {
    2
}
fn default_stream() -> bool {
    true
}

impl ModelConfig {
    /// A preset's defaults with the key from its environment variable, if set.
    pub fn preset(preset: Preset, env: impl Fn(&str) -> Option<String>) -> ModelConfig {
        let (base_url, model, key_var) = preset.defaults();
        ModelConfig {
            base_url: base_url.to_owned(),
            model: model.to_owned(),
            api_key: key_var.and_then(&env),
            timeout_s: default_timeout(),
            retries: default_retries(),
            stream: default_stream(),
            temperature: None,
        }
    }
}

/// A tool call as a model asked for it; `arguments` is the model's text, unparsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A chat message as the wire carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(default)]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "wire_calls")]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

/// The wire nests a call's name and arguments under `function`.
mod wire_calls {
    use super::ToolCall;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Function {
        name: String,
        #[serde(default)]
        arguments: String,
    }

    #[derive(Serialize, Deserialize)]
    struct Call {
        id: String,
        #[serde(rename = "type", default = "function")]
        kind: String,
        function: Function,
    }

    fn function() -> String {
        "function".to_owned()
    }

    pub(super) fn serialize<S: Serializer>(calls: &[ToolCall], s: S) -> Result<S::Ok, S::Error> {
        calls
            .iter()
            .map(|c| Call {
                id: c.id.clone(),
                kind: function(),
                function: Function {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ToolCall>, D::Error> {
        let calls = Option::<Vec<Call>>::deserialize(d)?.unwrap_or_default();
        Ok(calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect())
    }
}

/// Tokens a call used, as the server reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// What one model call returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// As the server said it (`stop`, `tool_calls`, `length`, or a vendor's own).
    pub finish_reason: String,
    pub usage: Option<Usage>,
}

/// The model could not be asked or did not answer in the protocol: distinct from a tool's
/// failure, which goes back to the model as a tool result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("the model did not answer within {0:.0} s")]
    Timeout(f64),
    #[error("cannot reach the model at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the model server answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the model server's answer is not the chat-completions protocol: {0}")]
    Protocol(String),
}

/// A chat-completions client.
#[derive(Debug, Clone)]
pub struct ChatClient {
    config: ModelConfig,
    http: reqwest::Client,
}

/// A tool as the wire describes it to the model.
pub fn wire_tool(spec: &crate::tools::ToolSpec) -> Value {
    serde_json::json!({
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.input_schema,
        }
    })
}

/// Installs the process-wide TLS crypto provider (ring) that every reqwest client of this
/// build needs before it is built; calling it again is harmless.
pub fn install_tls_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ChatClient {
    pub fn new(config: ModelConfig) -> Result<ChatClient, ProviderError> {
        install_tls_crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ProviderError::Connect {
                url: config.base_url.clone(),
                reason: e.to_string(),
            })?;
        Ok(ChatClient { config, http })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// One model turn over `messages` with `tools` offered, retried on connection failures,
    /// 429 and 5xx; a timeout is not retried (the next try would wait as long).
    pub async fn complete(
        &self,
        messages: &[Message],
        tools: &[Value],
    ) -> Result<Turn, ProviderError> {
        let mut attempt = 0;
        loop {
            match self.complete_once(messages, tools).await {
                Err(e @ (ProviderError::Connect { .. } | ProviderError::Status { .. }))
                    if attempt < self.config.retries && retryable(&e) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * (1 << attempt.min(6)))).await;
                    let _ = e;
                }
                other => return other,
            }
        }
    }

    async fn complete_once(
        &self,
        messages: &[Message],
        tools: &[Value],
    ) -> Result<Turn, ProviderError> {
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "stream": self.config.stream,
        });
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools.to_vec());
            body["tool_choice"] = Value::from("auto");
        }
        if self.config.stream {
            body["stream_options"] = serde_json::json!({ "include_usage": true });
        }
        if let Some(t) = self.config.temperature {
            body["temperature"] = Value::from(t);
        }
        let timeout = Duration::from_secs_f64(self.config.timeout_s.max(0.001));
        let call = async {
            let mut request = self.http.post(&url).json(&body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.map_err(|e| ProviderError::Connect {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                return Err(ProviderError::Status {
                    status: status.as_u16(),
                    body: text.chars().take(500).collect(),
                });
            }
            if self.config.stream {
                read_stream(response).await
            } else {
                let bytes = response.bytes().await.map_err(|e| ProviderError::Connect {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                parse_completion(&bytes)
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ProviderError::Timeout(self.config.timeout_s))?
    }
}

fn retryable(e: &ProviderError) -> bool {
    match e {
        ProviderError::Connect { .. } => true,
        ProviderError::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, with = "wire_calls")]
    tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<DeltaCall>>,
}

#[derive(Deserialize)]
struct DeltaCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<DeltaFunction>,
}

#[derive(Deserialize)]
struct DeltaFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// A whole (non-streamed) completion.
pub fn parse_completion(bytes: &[u8]) -> Result<Turn, ProviderError> {
    let c: Completion =
        serde_json::from_slice(bytes).map_err(|e| ProviderError::Protocol(e.to_string()))?;
    let choice = c
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Protocol("no choices in the answer".to_owned()))?;
    let message = choice
        .message
        .ok_or_else(|| ProviderError::Protocol("the choice has no message".to_owned()))?;
    Ok(Turn {
        content: message.content,
        tool_calls: message.tool_calls,
        finish_reason: choice.finish_reason.unwrap_or_default(),
        usage: c.usage,
    })
}

/// Folds streamed chunks into one turn: content appended, tool calls assembled by index.
#[derive(Debug, Default)]
pub struct StreamFold {
    content: String,
    calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamFold {
    /// Takes one server-sent-event `data:` payload.
    pub fn data(&mut self, payload: &str) -> Result<(), ProviderError> {
        let payload = payload.trim();
        if payload == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if payload.is_empty() {
            return Ok(());
        }
        let chunk: Completion = serde_json::from_str(payload)
            .map_err(|e| ProviderError::Protocol(format!("a streamed chunk: {e}")))?;
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        for choice in chunk.choices {
            if let Some(r) = choice.finish_reason {
                self.finish_reason = Some(r);
            }
            let delta = choice.delta.unwrap_or_default();
            if let Some(text) = delta.content {
                self.content.push_str(&text);
            }
            for (n, call) in delta.tool_calls.into_iter().flatten().enumerate() {
                let index = call.index.unwrap_or(n);
                if index > 64 {
                    return Err(ProviderError::Protocol(format!(
                        "tool call index {index} in a stream"
                    )));
                }
                while self.calls.len() <= index {
                    self.calls.push(ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let slot = &mut self.calls[index];
                if let Some(id) = call.id {
                    slot.id = id;
                }
                if let Some(f) = call.function {
                    if let Some(name) = f.name {
                        slot.name.push_str(&name);
                    }
                    if let Some(args) = f.arguments {
                        slot.arguments.push_str(&args);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Turn, ProviderError> {
        if self.finish_reason.is_none() && !self.done {
            return Err(ProviderError::Protocol(
                "the stream ended before the answer did".to_owned(),
            ));
        }
        let mut calls = self.calls;
        for (n, c) in calls.iter_mut().enumerate() {
            if c.id.is_empty() {
                c.id = format!("call_{n}");
            }
        }
        Ok(Turn {
            content: (!self.content.is_empty()).then_some(self.content),
            tool_calls: calls,
            finish_reason: self.finish_reason.unwrap_or_default(),
            usage: self.usage,
        })
    }
}

/// Reads a server-sent-event body line by line.
async fn read_stream(response: reqwest::Response) -> Result<Turn, ProviderError> {
    let mut fold = StreamFold::default();
    let mut buffer: Vec<u8> = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ProviderError::Protocol(format!("the stream broke: {e}")))?;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                fold.data(data)?;
            }
        }
    }
    let rest = String::from_utf8_lossy(&buffer);
    if let Some(data) = rest.trim_end().strip_prefix("data:") {
        fold.data(data)?;
    }
    fold.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_completion_with_tool_calls_and_a_vendor_finish_reason_parses() {
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,
            "reasoning_content":"thinking...","tool_calls":[{"id":"c1","type":"function",
            "function":{"name":"query_kpis","arguments":"{}"}}]},"finish_reason":"insufficient_system_resource"}],
            "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let turn = parse_completion(body).expect("parses");
        assert_eq!(turn.tool_calls[0].name, "query_kpis");
        assert_eq!(turn.finish_reason, "insufficient_system_resource");
        assert_eq!(
            turn.usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 3
            })
        );
        assert!(matches!(
            parse_completion(b"{\"choices\":[]}"),
            Err(ProviderError::Protocol(_))
        ));
        assert!(matches!(
            parse_completion(b"<html>"),
            Err(ProviderError::Protocol(_))
        ));
    }

    #[test]
    fn streamed_tool_call_fragments_are_assembled_by_index() {
        let mut fold = StreamFold::default();
        for data in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"check."}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"query_tele","arguments":"{\"mach"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"metry","arguments":"ine\":\"TURN-01\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"query_kpis","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":9}}"#,
            "[DONE]",
        ] {
            fold.data(data).expect("a chunk");
        }
        let turn = fold.finish().expect("complete");
        assert_eq!(turn.content.as_deref(), Some("Let me check."));
        assert_eq!(turn.tool_calls.len(), 2);
        assert_eq!(turn.tool_calls[0].name, "query_telemetry");
        assert_eq!(turn.tool_calls[0].arguments, r#"{"machine":"TURN-01"}"#);
        assert_eq!(turn.tool_calls[1].id, "b");
        assert_eq!(turn.usage.map(|u| u.prompt_tokens), Some(40));
    }

    #[test]
    fn a_stream_cut_short_or_garbled_is_a_protocol_fault() {
        let mut fold = StreamFold::default();
        fold.data(r#"{"choices":[{"index":0,"delta":{"content":"Hal"}}]}"#)
            .expect("chunk");
        assert!(matches!(fold.finish(), Err(ProviderError::Protocol(_))));
        let mut fold = StreamFold::default();
        assert!(matches!(
            fold.data("{not json"),
            Err(ProviderError::Protocol(_))
        ));
    }

    #[test]
    fn messages_serialise_as_the_wire_expects() {
        let m = Message::Assistant {
            content: None,
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "query_kpis".into(),
                arguments: "{}".into(),
            }],
        };
        let v = serde_json::to_value(&m).expect("serialises");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["tool_calls"][0]["type"], "function");
        assert_eq!(v["tool_calls"][0]["function"]["name"], "query_kpis");
        let t = serde_json::to_value(Message::Tool {
            tool_call_id: "c1".into(),
            content: "{}".into(),
        })
        .expect("serialises");
        assert_eq!(t["role"], "tool");
        assert_eq!(t["tool_call_id"], "c1");
    }

    #[test]
    fn presets_fill_in_the_base_url_model_and_key() {
        let q = ModelConfig::preset(Preset::Qwen, |k| {
            (k == "DASHSCOPE_API_KEY").then(|| "sk-x".to_owned())
        });
        assert!(q.base_url.contains("compatible-mode/v1"));
        assert_eq!(q.api_key.as_deref(), Some("sk-x"));
        let o = ModelConfig::preset(Preset::Ollama, |_| None);
        assert!(o.base_url.starts_with("http://127.0.0.1:11434"));
        assert_eq!(Preset::parse("DeepSeek"), Some(Preset::DeepSeek));
        assert_eq!(Preset::parse("gpt"), None);
        // The key is never written out with the configuration.
        let shown = serde_json::to_string(&q).expect("serialises");
        assert!(!shown.contains("sk-x"));
    }
}
