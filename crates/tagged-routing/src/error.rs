use crate::{Revision, Version};

/// Every failure tagcfg knows about. Transports map it to a status in one place
/// (`http-api`'s `problem` module); stores map their SDK errors into it in one place each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The key does not follow the grammar (`<tag><name>`, see [`crate::validate_name`]).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// No tag of the routing table is a prefix of the key.
    #[error("unknown tag: no route matches key '{0}'")]
    UnknownTag(String),
    /// A tenant id that does not match `[a-z0-9][a-z0-9-]{{0,62}}`.
    #[error("invalid tenant id: {0}")]
    InvalidTenant(String),
    /// A tier name that does not match `[a-z0-9][a-z0-9-]{{0,62}}`.
    #[error("invalid tier name: {0}")]
    InvalidTier(String),
    /// The routing table configuration is malformed (reported at start-up).
    #[error("invalid routing table: {0}")]
    InvalidRoutingTable(String),
    /// The request body or a parameter is not acceptable.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The value nests arrays and objects deeper than [`crate::MAX_JSON_DEPTH`].
    #[error("the value nests {depth} levels deep; at most {limit} are accepted")]
    ValueTooDeep { depth: usize, limit: usize },
    /// The value exceeds the limit of the backend it routes to.
    #[error("value is {size} bytes; {backend} accepts at most {limit} bytes")]
    ValueTooLarge { size: usize, limit: usize, backend: String },
    /// The key (or the requested page) does not exist for this owner.
    #[error("not found")]
    NotFound,
    /// `If-Match` named a version that is not the current one (`actual` is `None` when the
    /// key does not exist).
    #[error("version mismatch: expected {expected}, current {}", .actual.map(|v| v.to_string()).unwrap_or_else(|| "none (key absent)".into()))]
    VersionMismatch { expected: Version, actual: Option<Version> },
    /// A create-only write (`If-None-Match: *`) found the key present.
    #[error("key already exists at version {0}")]
    AlreadyExists(Version),
    /// Concurrent writers kept colliding; the caller may retry.
    #[error("conflicting concurrent write: {0}")]
    Conflict(String),
    /// A read asked for a revision the store has not reached.
    #[error("revision {requested} not reached (head is {head})")]
    RevisionNotReached { requested: Revision, head: Revision },
    /// The caller lacks the scope for this operation.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The backend throttled the call; retry after the given seconds.
    #[error("throttled by {backend}; retry after {retry_after_secs}s")]
    Throttled { backend: String, retry_after_secs: u64 },
    /// A transient backend failure (network, 5xx): retryable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A permanent backend failure (misconfiguration, access denied, corrupt data).
    #[error("backend error: {0}")]
    Backend(String),
    /// A schema registration that is not a valid registration or JSON Schema.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// The value breaks the schema (or the override bound) that governs its key.
    #[error("the value does not satisfy the schema of its key ({} problem(s))", .0.len())]
    SchemaViolation(Vec<crate::governance::Violation>),
    /// The override policy of the key forbids writing it in this layer.
    #[error("{0}")]
    OverrideDenied(String),
    /// A change set this deployment cannot write all or nothing.
    #[error("not atomic: {0}")]
    NotAtomic(String),
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Conflict(_) | Error::Throttled { .. } | Error::Unavailable(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
