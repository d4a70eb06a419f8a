//! `tagcfg watch`: a Watch stream printed as JSON lines, one per change.

use std::io::Write;

use watch::pb::{self, config_watch_client::ConfigWatchClient, watch_event::Event};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("invalid watch server URL {0}")]
    Url(String),
    #[error("cannot reach the watch server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the watch server refused: {0}")]
    Refused(String),
    #[error("resync needed: {0} (run again with --since to resume, or without it to go live)")]
    Resync(String),
}

/// One printed change. The value stays raw JSON text, so it prints exactly as written.
#[derive(serde::Serialize)]
struct Line<'a> {
    revision: u64,
    key: &'a str,
    op: &'a str,
    version: u64,
    actor: &'a str,
    at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_omitted: Option<&'a str>,
}

/// Prints changes under `prefixes` (after `since`, if given) until `count` were printed or
/// the stream ends.
pub async fn print_changes(
    url: &str,
    token: &str,
    prefixes: Vec<String>,
    since: Option<u64>,
    count: Option<usize>,
) -> Result<(), WatchError> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|_| WatchError::Url(url.to_owned()))?
        .connect()
        .await
        .map_err(|e| WatchError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let mut request = tonic::Request::new(pb::WatchRequest {
        prefixes,
        since_revision: since,
    });
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| WatchError::Refused("the token is not ASCII".into()))?;
    request.metadata_mut().insert("authorization", bearer);
    let mut stream = ConfigWatchClient::new(channel)
        .watch(request)
        .await
        .map_err(|s| WatchError::Refused(format!("{:?}: {}", s.code(), s.message())))?
        .into_inner();
    let mut printed = 0;
    let mut out = std::io::stdout();
    while let Some(event) = stream
        .message()
        .await
        .map_err(|s| WatchError::Refused(s.message().to_owned()))?
    {
        match event.event {
            Some(Event::Changes(batch)) => {
                for c in batch.changes {
                    let line = Line {
                        revision: c.revision,
                        key: &c.key,
                        op: &c.op,
                        version: c.version,
                        actor: &c.actor,
                        at: &c.at,
                        value: c.value_json.as_deref().and_then(|v| serde_json::from_str(v).ok()),
                        value_omitted: Some(c.value_omitted.as_str()).filter(|o| !o.is_empty()),
                    };
                    let _ = writeln!(out, "{}", serde_json::to_string(&line).unwrap_or_default());
                    printed += 1;
                    if count.is_some_and(|n| printed >= n) {
                        return Ok(());
                    }
                }
                let _ = out.flush();
            }
            Some(Event::Heartbeat(hb)) => eprintln!("# live at revision {}", hb.revision),
            Some(Event::Resync(r)) => return Err(WatchError::Resync(r.reason)),
            None => {}
        }
    }
    Ok(())
}
