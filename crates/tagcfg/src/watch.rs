//! `tagcfg watch`: a Watch stream printed as JSON lines, one per update of an effective
//! value.

use std::io::Write;

use client::ClientError;
use push::pb::{self, watch_event::Event};
use push::{cursor_from_pb, cursor_to_pb, layer_from_pb, Cursor};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("watch server {url}: {error}")]
    Client { url: String, error: ClientError },
    #[error("the stream ended: {0}")]
    Ended(String),
    #[error("resync needed: {reason} (last cursor {cursor}; run again without --since to go live)")]
    Resync { reason: String, cursor: String },
}

/// One printed update. The value stays raw JSON text, so it prints exactly as written.
#[derive(serde::Serialize)]
struct Line<'a> {
    key: &'a str,
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<String>,
    version: u64,
    revision: u64,
    actor: &'a str,
    at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_omitted: Option<&'static str>,
    /// Where the stream stands after this update's batch: `--since` resumes from it.
    cursor: String,
}

fn cursor_text(c: Option<&pb::Cursor>) -> String {
    c.and_then(|c| cursor_from_pb(c).ok())
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Prints updates under `prefixes` (after the cursor `since`, if given) until `count` were
/// printed or the stream ends.
pub async fn print_changes(
    url: &str,
    token: &str,
    prefixes: Vec<String>,
    since: Option<Cursor>,
    count: Option<usize>,
) -> Result<(), WatchError> {
    let failed = |error| WatchError::Client {
        url: url.to_owned(),
        error,
    };
    let channel = client::grpc::channel(url).map_err(failed)?;
    let mut stream = client::grpc::watch(channel, token, prefixes, since.as_ref().map(cursor_to_pb))
        .await
        .map_err(failed)?;
    let mut printed = 0;
    let mut out = std::io::stdout();
    while let Some(event) = stream
        .message()
        .await
        .map_err(|s| WatchError::Ended(client::grpc::from_status(&s).to_string()))?
    {
        match event.event {
            Some(Event::Updates(batch)) => {
                let cursor = cursor_text(batch.cursor.as_ref());
                for u in &batch.updates {
                    let line = Line {
                        key: &u.key,
                        op: match u.op() {
                            pb::Op::Delete => "delete",
                            _ => "put",
                        },
                        layer: u.layer.as_ref().and_then(layer_from_pb).map(|l| l.to_string()),
                        version: u.version,
                        revision: u.revision,
                        actor: &u.actor,
                        at: &u.at,
                        value: u.value_json.as_deref().and_then(|v| serde_json::from_str(v).ok()),
                        value_omitted: match u.value_omitted() {
                            pb::ValueOmitted::Secret => Some("secret"),
                            pb::ValueOmitted::TooLarge => Some("too_large"),
                            pb::ValueOmitted::None => None,
                        },
                        cursor: cursor.clone(),
                    };
                    let _ = writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default());
                    printed += 1;
                    if count.is_some_and(|n| printed >= n) {
                        return Ok(());
                    }
                }
                let _ = out.flush();
            }
            Some(Event::Heartbeat(hb)) => eprintln!("# live at cursor {}", cursor_text(hb.cursor.as_ref())),
            Some(Event::Resync(r)) => {
                return Err(WatchError::Resync {
                    reason: r.reason,
                    cursor: cursor_text(r.cursor.as_ref()),
                })
            }
            None => {}
        }
    }
    Ok(())
}
