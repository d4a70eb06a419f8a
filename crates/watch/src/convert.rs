//! Domain ↔ protobuf, and the one place errors become gRPC status codes.

use tagged_routing::{
    BackendKind, Change, ChangeOp, ConfigItem, Error, JsonText, Layer, Revision, ValueOmitted, Version,
};
use tenant_auth::AuthError;
use tonic::Status;

use crate::pb;

pub fn change_to_pb(c: &Change) -> pb::Change {
    pb::Change {
        tenant: c.tenant.clone(),
        revision: c.revision.0,
        key: c.key.clone(),
        tag: c.tag.clone(),
        backend: c.backend.as_str().to_owned(),
        op: match c.op {
            ChangeOp::Put => "put",
            ChangeOp::Delete => "delete",
        }
        .to_owned(),
        version: c.version.0,
        actor: c.actor.clone(),
        at: c.at.clone(),
        value_json: c.value.as_ref().map(|v| v.as_str().to_owned()),
        value_omitted: match c.value_omitted {
            Some(ValueOmitted::Secret) => "secret",
            Some(ValueOmitted::TooLarge) => "too_large",
            None => "",
        }
        .to_owned(),
    }
}

/// Checks a change pushed in through `Refresh`: a malformed one is refused, not guessed at.
pub fn change_from_pb(c: pb::Change) -> Result<Change, Status> {
    let bad = |what: &str| Status::invalid_argument(format!("change {}:{}: {what}", c.tenant, c.revision));
    let backend: BackendKind = c.backend.parse().map_err(|_| bad("unknown backend"))?;
    let op = match c.op.as_str() {
        "put" => ChangeOp::Put,
        "delete" => ChangeOp::Delete,
        _ => return Err(bad("op must be put or delete")),
    };
    let value_omitted = match c.value_omitted.as_str() {
        "" => None,
        "secret" => Some(ValueOmitted::Secret),
        "too_large" => Some(ValueOmitted::TooLarge),
        _ => return Err(bad("value_omitted must be secret, too_large or empty")),
    };
    let value = c
        .value_json
        .as_deref()
        .map(JsonText::parse)
        .transpose()
        .map_err(|_| bad("value_json is not JSON"))?;
    if backend.is_secret() && value.is_some() {
        return Err(bad("a secret value must not travel in a change"));
    }
    if c.revision == 0 || c.version == 0 {
        return Err(bad("revision and version start at 1"));
    }
    tagged_routing::Owner::parse(&c.tenant).map_err(|_| bad("invalid tenant"))?;
    Ok(Change {
        tenant: c.tenant.clone(),
        revision: Revision(c.revision),
        key: c.key.clone(),
        tag: c.tag.clone(),
        backend,
        op,
        version: Version(c.version),
        actor: c.actor.clone(),
        at: c.at.clone(),
        value,
        value_omitted,
    })
}

pub fn item_to_pb(i: &ConfigItem) -> pb::Item {
    pb::Item {
        key: i.key.clone(),
        value_json: i.value.as_str().to_owned(),
        version: i.version.0,
        revision: i.revision.0,
        updated_at: i.updated_at.clone(),
        layer: match i.layer {
            Layer::Tenant => "tenant",
            Layer::Shared => "shared",
        }
        .to_owned(),
    }
}

/// Domain error → gRPC status.
pub fn status_of(e: &Error) -> Status {
    let message = e.to_string();
    match e {
        Error::InvalidKey(_)
        | Error::UnknownTag(_)
        | Error::InvalidTenant(_)
        | Error::InvalidValue(_)
        | Error::InvalidRoutingTable(_) => Status::invalid_argument(message),
        Error::ValueTooLarge { .. } => Status::out_of_range(message),
        Error::NotFound => Status::not_found(message),
        Error::VersionMismatch { .. } | Error::AlreadyExists(_) | Error::RevisionNotReached { .. } => {
            Status::failed_precondition(message)
        }
        Error::Conflict(_) => Status::aborted(message),
        Error::Forbidden(_) => Status::permission_denied(message),
        Error::Throttled { .. } => Status::resource_exhausted(message),
        Error::Unavailable(_) => Status::unavailable(message),
        Error::Backend(_) => Status::internal("the backend failed"),
    }
}

/// Auth error → gRPC status (an unreachable JWKS is the server's problem, not the token's).
pub fn auth_status(e: &AuthError) -> Status {
    if e.is_unavailable() {
        Status::unavailable(e.to_string())
    } else {
        Status::unauthenticated(format!("{}: {e}", e.code()))
    }
}
