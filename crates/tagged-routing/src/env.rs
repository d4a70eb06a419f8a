//! Reading typed configuration from the environment. Every binary reads its settings once
//! at start-up through these helpers, so a bad or missing variable stops it with one
//! message that names the variable.

use crate::{RoutingTable, DEFAULT_ROUTES};

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{0} is required but not set")]
    Missing(String),
    #[error("{var}: {problem}")]
    Invalid { var: String, problem: String },
}

impl EnvError {
    pub fn invalid(var: &str, problem: impl Into<String>) -> Self {
        EnvError::Invalid {
            var: var.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A variable source: the process environment, or a map in tests.
pub trait Lookup: Fn(&str) -> Option<String> {}
impl<F: Fn(&str) -> Option<String>> Lookup for F {}

/// The process environment; empty values count as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn required(get: &impl Lookup, var: &str) -> Result<String, EnvError> {
    get(var).ok_or_else(|| EnvError::Missing(var.to_owned()))
}

pub fn number(get: &impl Lookup, var: &str, default: u64) -> Result<u64, EnvError> {
    get(var).map_or(Ok(default), |v| {
        v.trim()
            .parse()
            .map_err(|_| EnvError::invalid(var, format!("'{v}' is not a whole number")))
    })
}

/// [`number`] as a count of things in memory (streams, MiB): refused when it does not fit
/// a `usize`.
pub fn count(get: &impl Lookup, var: &str, default: usize) -> Result<usize, EnvError> {
    let n = number(get, var, default as u64)?;
    usize::try_from(n).map_err(|_| EnvError::invalid(var, format!("{n} is too large")))
}

pub fn flag(get: &impl Lookup, var: &str) -> Result<bool, EnvError> {
    match get(var).as_deref().map(str::trim) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(EnvError::invalid(var, format!("'{other}' is not true or false"))),
    }
}

/// `TAGCFG_ROUTES`, or the default table.
pub fn routes(get: &impl Lookup) -> Result<RoutingTable, EnvError> {
    RoutingTable::parse(&get("TAGCFG_ROUTES").unwrap_or_else(|| DEFAULT_ROUTES.into()))
        .map_err(|e| EnvError::invalid("TAGCFG_ROUTES", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_name_the_variable() {
        let get = |k: &str| match k {
            "N" => Some("12".to_owned()),
            "BAD" => Some("soon".to_owned()),
            "YES" => Some("true".to_owned()),
            _ => None,
        };
        assert_eq!(number(&get, "N", 1), Ok(12));
        assert_eq!(number(&get, "UNSET", 7), Ok(7));
        assert_eq!((count(&get, "N", 1), count(&get, "UNSET", 3)), (Ok(12), Ok(3)));
        assert!(count(&get, "BAD", 1).unwrap_err().to_string().starts_with("BAD:"));
        assert!(number(&get, "BAD", 1).unwrap_err().to_string().starts_with("BAD:"));
        assert_eq!(flag(&get, "YES"), Ok(true));
        assert!(flag(&get, "BAD").is_err());
        assert_eq!(
            required(&get, "UNSET").unwrap_err().to_string(),
            "UNSET is required but not set"
        );
        assert_eq!(routes(&get).unwrap(), RoutingTable::default());
    }
}
