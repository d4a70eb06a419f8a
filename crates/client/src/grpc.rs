//! The push server's gRPC API as the client calls it: the channel, the bearer token on
//! each request, and one `Watch` stream. [`crate::Client`] holds its stream through these;
//! the CLI's `tagcfg watch` prints one.

use std::time::Duration;

use push::pb::{self, config_watch_client::ConfigWatchClient};
use tonic::transport::{Channel, Endpoint};

use crate::ClientError;

/// A channel to the push server at `endpoint` (`http://host:port`). It connects on first
/// use, so a server that is down fails the first call, not this one; `TCP_NODELAY` keeps
/// small answers from waiting for a delayed ACK.
pub fn channel(endpoint: &str) -> Result<Channel, ClientError> {
    Ok(Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| ClientError::Invalid(format!("endpoint {endpoint}: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// `message` with `authorization: Bearer <token>`.
pub fn authorized<T>(message: T, token: &str) -> Result<tonic::Request<T>, ClientError> {
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| ClientError::Invalid("the token is not valid ASCII".into()))?;
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// Opens one `Watch` stream of the token's tenant under `prefixes`, replaying what moved
/// after `since` first (live only, without it).
pub async fn watch(
    channel: Channel,
    token: &str,
    prefixes: Vec<String>,
    since: Option<pb::Cursor>,
) -> Result<tonic::Streaming<pb::WatchEvent>, ClientError> {
    let request = authorized(pb::WatchRequest { prefixes, since }, token)?;
    Ok(ConfigWatchClient::new(channel)
        .watch(request)
        .await
        .map_err(|s| from_status(&s))?
        .into_inner())
}

/// The one mapping of gRPC statuses to [`ClientError`].
pub fn from_status(s: &tonic::Status) -> ClientError {
    match s.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            ClientError::Unauthenticated(s.message().to_owned())
        }
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ClientError::Invalid(s.message().to_owned()),
        _ => ClientError::Unavailable(format!("{:?}: {}", s.code(), s.message())),
    }
}
