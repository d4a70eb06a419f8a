//! Domain ↔ protobuf, and the one place errors become gRPC status codes.

use tagged_routing::{
    BackendKind, Change, ChangeOp, ConfigItem, Error, JsonText, Layer, Owner, Revision, RoutingTable, TierName,
    ValueOmitted, Version, INLINE_VALUE_LIMIT,
};
use tenant_auth::AuthError;
use tonic::Status;

use crate::hub::{Cursor, Update};
use crate::pb;

fn op_to_pb(op: ChangeOp) -> pb::Op {
    match op {
        ChangeOp::Put => pb::Op::Put,
        ChangeOp::Delete => pb::Op::Delete,
        ChangeOp::Tier => pb::Op::Tier,
    }
}

fn backend_to_pb(b: BackendKind) -> pb::Backend {
    match b {
        BackendKind::Dynamodb => pb::Backend::Dynamodb,
        BackendKind::Ssm => pb::Backend::Ssm,
        BackendKind::SsmSecure => pb::Backend::SsmSecure,
    }
}

fn omitted_to_pb(o: Option<ValueOmitted>) -> pb::ValueOmitted {
    match o {
        None => pb::ValueOmitted::None,
        Some(ValueOmitted::Secret) => pb::ValueOmitted::Secret,
        Some(ValueOmitted::TooLarge) => pb::ValueOmitted::TooLarge,
    }
}

pub fn layer_to_pb(layer: &Layer) -> pb::Layer {
    match layer {
        Layer::Tenant => pb::Layer {
            kind: pb::LayerKind::Tenant.into(),
            tier: String::new(),
        },
        Layer::Tier(t) => pb::Layer {
            kind: pb::LayerKind::Tier.into(),
            tier: t.to_string(),
        },
        Layer::Shared => pb::Layer {
            kind: pb::LayerKind::Shared.into(),
            tier: String::new(),
        },
    }
}

/// The domain layer of a protobuf one (`None` when unspecified or malformed).
pub fn layer_from_pb(layer: &pb::Layer) -> Option<Layer> {
    match layer.kind() {
        pb::LayerKind::Tenant => Some(Layer::Tenant),
        pb::LayerKind::Shared => Some(Layer::Shared),
        pb::LayerKind::Tier => TierName::parse(&layer.tier).ok().map(Layer::Tier),
        pb::LayerKind::Unspecified => None,
    }
}

pub fn cursor_to_pb(c: &Cursor) -> pb::Cursor {
    pb::Cursor {
        tenant: c.tenant.0,
        tier: c.tier.as_ref().map(|(t, _)| t.to_string()).unwrap_or_default(),
        tier_revision: c.tier.as_ref().map_or(0, |(_, r)| r.0),
        shared: c.shared.0,
    }
}

pub fn cursor_from_pb(c: &pb::Cursor) -> Result<Cursor, Status> {
    let tier = match c.tier.as_str() {
        "" => None,
        name => Some((
            TierName::parse(name).map_err(|e| Status::invalid_argument(format!("cursor: {e}")))?,
            Revision(c.tier_revision),
        )),
    };
    Ok(Cursor {
        tenant: Revision(c.tenant),
        tier,
        shared: Revision(c.shared),
    })
}

pub fn change_to_pb(c: &Change) -> pb::Change {
    pb::Change {
        owner: c.tenant.clone(),
        revision: c.revision.0,
        key: c.key.clone(),
        tag: c.tag.clone(),
        backend: backend_to_pb(c.backend).into(),
        op: op_to_pb(c.op).into(),
        version: c.version.0,
        actor: c.actor.clone(),
        at: c.at.clone(),
        value_json: c.value.as_ref().map(|v| v.as_str().to_owned()),
        value_omitted: omitted_to_pb(c.value_omitted).into(),
        set_last: c.set_last.map(|r| r.0),
    }
}

/// Checks a change pushed in through `Refresh`: a malformed one is refused, not guessed at.
pub fn change_from_pb(c: pb::Change, routes: &RoutingTable) -> Result<Change, Status> {
    let bad = |what: &str| Status::invalid_argument(format!("change {}:{}: {what}", c.owner, c.revision));
    let backend = match c.backend() {
        pb::Backend::Dynamodb => BackendKind::Dynamodb,
        pb::Backend::Ssm => BackendKind::Ssm,
        pb::Backend::SsmSecure => BackendKind::SsmSecure,
        pb::Backend::Unspecified => return Err(bad("unknown backend")),
    };
    let op = match c.op() {
        pb::Op::Put => ChangeOp::Put,
        pb::Op::Delete => ChangeOp::Delete,
        pb::Op::Tier => ChangeOp::Tier,
        pb::Op::Unspecified => return Err(bad("op must be put, delete or tier")),
    };
    let value_omitted = match c.value_omitted() {
        pb::ValueOmitted::None => None,
        pb::ValueOmitted::Secret => Some(ValueOmitted::Secret),
        pb::ValueOmitted::TooLarge => Some(ValueOmitted::TooLarge),
    };
    let value = c
        .value_json
        .as_deref()
        .map(JsonText::parse)
        .transpose()
        .map_err(|_| bad("value_json is not JSON"))?;
    if c.revision == 0 || c.version == 0 {
        return Err(bad("revision and version start at 1"));
    }
    let owner = Owner::parse(&c.owner).map_err(|_| bad("invalid owner"))?;
    let change = Change {
        tenant: c.owner.clone(),
        revision: Revision(c.revision),
        key: c.key.clone(),
        tag: c.tag.clone(),
        backend,
        op,
        version: Version(c.version),
        actor: c.actor.clone(),
        // Watchers get values, not provenance: the reason stays in the change log.
        reason: None,
        set_last: c.set_last.map(Revision),
        at: c.at.clone(),
        value,
        value_omitted,
    };
    if op == ChangeOp::Tier {
        if !matches!(owner, Owner::Tenant(_)) || change.assigned_tier().is_none() {
            return Err(bad("a tier change belongs to a tenant and names a tier or null"));
        }
        return Ok(change);
    }
    if tagged_routing::governance::is_record_key(&c.key) {
        // A schema registration: the shared log's, carried to keep its revisions gap-free.
        return match owner {
            Owner::Shared if backend == tagged_routing::BackendKind::Dynamodb => Ok(change),
            _ => Err(bad("a schema registration belongs to the shared layer")),
        };
    }
    let key = routes.parse_key(&c.key).map_err(|e| bad(&e.to_string()))?;
    if key.backend() != backend || key.tag().as_str() != c.tag {
        return Err(bad("the key's tag and backend do not match this server's routes"));
    }
    if backend.is_secret() && change.value.is_some() {
        return Err(bad("a secret value must not travel in a change"));
    }
    Ok(change)
}

pub fn item_to_pb(i: &ConfigItem) -> pb::Item {
    pb::Item {
        key: i.key.clone(),
        value_json: i.value.as_str().to_owned(),
        version: i.version.0,
        revision: i.revision.0,
        updated_at: i.updated_at.clone(),
        layer: Some(layer_to_pb(&i.layer)),
    }
}

/// An update as a watcher receives it. Secret values never travel on the stream and values
/// over [`INLINE_VALUE_LIMIT`] are left out: the client reads those with `Get`.
pub fn update_to_pb(u: &Update, routes: &RoutingTable) -> pb::Update {
    match (&u.item, &u.removed_by) {
        (Some(item), _) => {
            let secret = routes.parse_key(&u.key).is_ok_and(|k| k.backend().is_secret());
            let omitted = if secret {
                Some(ValueOmitted::Secret)
            } else if item.value.len() > INLINE_VALUE_LIMIT {
                Some(ValueOmitted::TooLarge)
            } else {
                None
            };
            pb::Update {
                key: u.key.clone(),
                op: pb::Op::Put.into(),
                layer: Some(layer_to_pb(&item.layer)),
                version: item.version.0,
                revision: item.revision.0,
                actor: item.updated_by.clone(),
                at: item.updated_at.clone(),
                value_json: omitted.is_none().then(|| item.value.as_str().to_owned()),
                value_omitted: omitted_to_pb(omitted).into(),
            }
        }
        (None, cause) => pb::Update {
            key: u.key.clone(),
            op: pb::Op::Delete.into(),
            layer: None,
            version: cause.as_ref().map_or(0, |c| c.version.0),
            revision: cause.as_ref().map_or(0, |c| c.revision.0),
            actor: cause.as_ref().map(|c| c.actor.clone()).unwrap_or_default(),
            at: cause.as_ref().map(|c| c.at.clone()).unwrap_or_default(),
            value_json: None,
            value_omitted: pb::ValueOmitted::None.into(),
        },
    }
}

/// Domain error → gRPC status.
pub fn status_of(e: &Error) -> Status {
    let message = e.to_string();
    match e {
        Error::InvalidKey(_)
        | Error::UnknownTag(_)
        | Error::InvalidTenant(_)
        | Error::InvalidTier(_)
        | Error::InvalidValue(_)
        | Error::ValueTooDeep { .. }
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
        Error::InvalidSchema(_) => Status::invalid_argument(message),
        Error::SchemaViolation(_) => Status::invalid_argument(message),
        Error::OverrideDenied(_) => Status::permission_denied(message),
        Error::NotAtomic(_) => Status::invalid_argument(message),
    }
}

/// Auth error → gRPC status (an unreachable JWKS is the server's problem, not the token's;
/// a valid operator token on a tenant's call is refused, not unauthenticated).
pub fn auth_status(e: &AuthError) -> Status {
    if e.is_unavailable() {
        Status::unavailable(e.to_string())
    } else if e.is_wrong_principal() {
        Status::permission_denied(format!("{}: {e}", e.code()))
    } else {
        Status::unauthenticated(format!("{}: {e}", e.code()))
    }
}
