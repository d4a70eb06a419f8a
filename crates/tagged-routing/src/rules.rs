//! The write semantics every store applies inside its own transaction, so that the
//! in-memory, redb and AWS stores agree on versions, preconditions and revisions.

use crate::{Error, Precondition, Result, Version};

/// Checks a put's precondition against the current version and returns the version the
/// write will create.
pub fn version_after_put(current: Option<Version>, precondition: Precondition) -> Result<Version> {
    match (precondition, current) {
        (Precondition::IfVersion(expected), actual) if actual != Some(expected) => {
            Err(Error::VersionMismatch { expected, actual })
        }
        (Precondition::CreateOnly, Some(v)) => Err(Error::AlreadyExists(v)),
        (_, current) => Ok(Version(current.map_or(1, |v| v.0 + 1))),
    }
}

/// Checks a delete's precondition; returns the version being removed.
pub fn version_removed_by_delete(current: Option<Version>, precondition: Precondition) -> Result<Version> {
    match (precondition, current) {
        (_, None) => Err(Error::NotFound),
        (Precondition::IfVersion(expected), Some(actual)) if actual != expected => Err(Error::VersionMismatch {
            expected,
            actual: Some(actual),
        }),
        (Precondition::CreateOnly, Some(v)) => Err(Error::AlreadyExists(v)),
        (_, Some(v)) => Ok(v),
    }
}

/// Plans a change set: checks its size and that its keys are distinct, then, with each
/// key's current version (`current`), the version every write leaves, or the first failing
/// precondition. Nothing is written by planning.
pub fn plan_set(
    writes: &[crate::SetWrite],
    current: impl Fn(&crate::Key) -> Option<Version>,
) -> Result<Vec<Version>, Error> {
    if writes.is_empty() || writes.len() > crate::MAX_SET_WRITES {
        return Err(Error::InvalidValue(format!(
            "a change set holds 1 to {} writes",
            crate::MAX_SET_WRITES
        )));
    }
    let mut seen = std::collections::HashSet::new();
    writes
        .iter()
        .map(|w| {
            if !seen.insert(w.key.as_str()) {
                return Err(Error::InvalidValue(format!(
                    "'{}' appears twice in the set",
                    w.key.as_str()
                )));
            }
            match w.value {
                Some(_) => version_after_put(current(&w.key), w.precondition),
                None => version_removed_by_delete(current(&w.key), w.precondition),
            }
        })
        .collect()
}

/// The changes of a set planned with [`plan_set`], after head revision `head`: consecutive
/// revisions, each marked with the last.
pub fn set_changes(
    owner: &crate::Owner,
    head: crate::Revision,
    writes: &[crate::SetWrite],
    versions: &[Version],
    author: &crate::Author,
    at: &str,
) -> Vec<crate::Change> {
    let last = crate::Revision(head.0 + writes.len() as u64);
    writes
        .iter()
        .zip(versions)
        .enumerate()
        .map(|(i, (w, version))| {
            let op = if w.value.is_some() {
                crate::ChangeOp::Put
            } else {
                crate::ChangeOp::Delete
            };
            let revision = crate::Revision(head.0 + 1 + i as u64);
            let mut change = crate::Change::new(
                owner,
                revision,
                &w.key,
                op,
                *version,
                author,
                at.to_owned(),
                w.value.as_ref(),
            );
            change.set_last = Some(last);
            change
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_rules() {
        assert_eq!(version_after_put(None, Precondition::None), Ok(Version(1)));
        assert_eq!(version_after_put(Some(Version(4)), Precondition::None), Ok(Version(5)));
        assert_eq!(
            version_after_put(Some(Version(4)), Precondition::IfVersion(Version(4))),
            Ok(Version(5))
        );
        assert_eq!(
            version_after_put(Some(Version(5)), Precondition::IfVersion(Version(4))),
            Err(Error::VersionMismatch {
                expected: Version(4),
                actual: Some(Version(5))
            })
        );
        assert_eq!(
            version_after_put(None, Precondition::IfVersion(Version(1))),
            Err(Error::VersionMismatch {
                expected: Version(1),
                actual: None
            })
        );
        assert_eq!(version_after_put(None, Precondition::CreateOnly), Ok(Version(1)));
        assert_eq!(
            version_after_put(Some(Version(2)), Precondition::CreateOnly),
            Err(Error::AlreadyExists(Version(2)))
        );
    }

    #[test]
    fn delete_rules() {
        assert_eq!(
            version_removed_by_delete(None, Precondition::None),
            Err(Error::NotFound)
        );
        assert_eq!(
            version_removed_by_delete(Some(Version(3)), Precondition::None),
            Ok(Version(3))
        );
        assert!(version_removed_by_delete(Some(Version(3)), Precondition::IfVersion(Version(2))).is_err());
    }
}
