//! `aifactory opcua browse URL`: lists a server's address space. (`ingest --opcua` and
//! `sim --opcua-listen` are the runtime's `opcua` module, wired in `ingest.rs` and `run.rs`.)

use aifactory_connect::opcua::Client;
use aifactory_runtime::opcua::CONNECT_TIMEOUT;
use std::process::ExitCode;

pub(crate) fn browse(url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = crate::setup::runtime()?;
    let nodes = runtime.block_on(async {
        let client = Client::connect(url, CONNECT_TIMEOUT).await?;
        let nodes = client.browse().await;
        client.disconnect().await;
        anyhow::Ok(nodes?)
    })?;
    if json {
        let rows: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "node_id": n.node_id,
                    "browse_name": n.browse_name,
                    "class": n.class,
                    "parent": n.parent,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        for n in &nodes {
            let indent = if n.parent.is_some() { "  " } else { "" };
            println!("{indent}{} ({}) {}", n.browse_name, n.class, n.node_id);
        }
        println!("{} nodes under Objects", nodes.len());
    }
    Ok(ExitCode::SUCCESS)
}
