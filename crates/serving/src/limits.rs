//! The connection limits and where each is read from.

use std::time::Duration;

use tagged_routing::env::{self, EnvError, Lookup};

/// Limits on the connections one listener holds. Each server (HTTP, gRPC) has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// `TAGCFG_MAX_CONNECTIONS` (default 512): connections open at once on this listener.
    /// Further clients wait in the kernel's accept backlog until one closes. The default
    /// keeps both local servers together under the common 1,024-descriptor soft limit.
    pub max_connections: usize,
    /// `TAGCFG_IDLE_TIMEOUT_SECS` (default 60): a connection that moves no byte either way
    /// for this long is closed. Watch streams are kept alive by their heartbeats
    /// (`TAGCFG_HEARTBEAT_SECS`, 15 s) and the server's HTTP/2 pings, so this must be longer.
    pub idle_timeout: Duration,
    /// `TAGCFG_HEADER_READ_TIMEOUT_MS` (default 10,000): HTTP/1.1 request headers must arrive
    /// in full within this time of the connection being ready for a request (an idle
    /// keep-alive connection is closed after it too).
    pub header_read_timeout: Duration,
    /// `TAGCFG_REQUEST_TIMEOUT_MS` (default 30,000): a request's answer must start within
    /// this time (HTTP: 503 `request_timeout`; gRPC unary: `CANCELLED`; a `Watch` stream is
    /// answered at once and then lives on).
    pub request_timeout: Duration,
    /// `TAGCFG_H2_MAX_STREAMS` (default 1,024): concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// `TAGCFG_H2_MAX_HEADER_BYTES` (default 16,384): the largest HTTP/2 header list.
    pub h2_max_header_list_bytes: u32,
}

/// How often the gRPC server pings an HTTP/2 connection, and how long it waits for the
/// answer before it drops the connection: finds peers that vanished without a FIN.
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 512,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            h2_max_concurrent_streams: 1024,
            h2_max_header_list_bytes: 16 * 1024,
        }
    }
}

impl ConnLimits {
    /// The limits from `TAGCFG_*` variables, defaults where unset; zero is refused.
    pub fn from_lookup(get: &impl Lookup) -> Result<Self, EnvError> {
        let d = ConnLimits::default();
        let positive = |var: &str, default: u64| -> Result<u64, EnvError> {
            match env::number(get, var, default)? {
                0 => Err(EnvError::invalid(var, "must be at least 1")),
                n => Ok(n),
            }
        };
        let small = |var: &str, default: u32| -> Result<u32, EnvError> {
            u32::try_from(positive(var, u64::from(default))?).map_err(|_| EnvError::invalid(var, "too large"))
        };
        Ok(ConnLimits {
            max_connections: usize::try_from(positive("TAGCFG_MAX_CONNECTIONS", d.max_connections as u64)?)
                .map_err(|_| EnvError::invalid("TAGCFG_MAX_CONNECTIONS", "too large"))?,
            idle_timeout: Duration::from_secs(positive("TAGCFG_IDLE_TIMEOUT_SECS", d.idle_timeout.as_secs())?),
            header_read_timeout: Duration::from_millis(positive(
                "TAGCFG_HEADER_READ_TIMEOUT_MS",
                d.header_read_timeout.as_millis() as u64,
            )?),
            request_timeout: Duration::from_millis(positive(
                "TAGCFG_REQUEST_TIMEOUT_MS",
                d.request_timeout.as_millis() as u64,
            )?),
            h2_max_concurrent_streams: small("TAGCFG_H2_MAX_STREAMS", d.h2_max_concurrent_streams)?,
            h2_max_header_list_bytes: small("TAGCFG_H2_MAX_HEADER_BYTES", d.h2_max_header_list_bytes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_variable_and_names_the_bad_one() {
        let get = |k: &str| match k {
            "TAGCFG_MAX_CONNECTIONS" => Some("7".to_owned()),
            "TAGCFG_IDLE_TIMEOUT_SECS" => Some("3".to_owned()),
            "TAGCFG_H2_MAX_STREAMS" => Some("9".to_owned()),
            _ => None,
        };
        let limits = ConnLimits::from_lookup(&get).unwrap();
        assert_eq!(limits.max_connections, 7);
        assert_eq!(limits.idle_timeout, Duration::from_secs(3));
        assert_eq!(limits.h2_max_concurrent_streams, 9);
        assert_eq!(limits.header_read_timeout, ConnLimits::default().header_read_timeout);

        let zero = |k: &str| (k == "TAGCFG_REQUEST_TIMEOUT_MS").then(|| "0".to_owned());
        let err = ConnLimits::from_lookup(&zero).unwrap_err().to_string();
        assert!(err.starts_with("TAGCFG_REQUEST_TIMEOUT_MS:"), "{err}");
        let huge = |k: &str| (k == "TAGCFG_H2_MAX_HEADER_BYTES").then(|| "99999999999".to_owned());
        assert!(ConnLimits::from_lookup(&huge).is_err());
    }
}
