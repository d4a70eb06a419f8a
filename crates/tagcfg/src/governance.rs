//! The governance commands: `tagcfg schema put|get|ls|rm`, `tagcfg apply FILE`,
//! `tagcfg revert` and `tagcfg effective`, each one call (or, for `apply --dry-run`, a few
//! reads) of the HTTP API through the client SDK.

use std::path::Path;

use clap::Subcommand;
use client::api::{Call, Method};
use serde_json::{json, Value};

use crate::{print, read_value, CliError, Remote};

#[derive(Subcommand)]
pub enum SchemaCommand {
    /// Register a schema at PATH (a key, or a prefix ending in `/`); BODY is
    /// `{"schema": …, "override": "allow" | "deny" | {"schema": …}}` (`-`: stdin, `@FILE`: a file).
    Put {
        path: String,
        body: String,
        /// Only list the stored values it would break; register nothing.
        #[arg(long)]
        dry_run: bool,
        /// Register even though stored values break it.
        #[arg(long)]
        force: bool,
    },
    /// Show the registration at PATH (`--history`: its versions).
    Get {
        path: String,
        #[arg(long)]
        history: bool,
    },
    /// List every registration.
    Ls,
    /// Remove the registration at PATH.
    Rm { path: String },
}

pub async fn schema(remote: &Remote, command: SchemaCommand) -> Result<(), CliError> {
    let answer = match command {
        SchemaCommand::Put {
            path,
            body,
            dry_run,
            force,
        } => {
            let query = match (dry_run, force) {
                (true, _) => "?dry_run=true",
                (false, true) => "?force=true",
                (false, false) => "",
            };
            let call = Call {
                body: Some(read_value(&body)?),
                ..Call::default()
            };
            remote
                .call(Method::PUT, &format!("/v1/schemas/{path}{query}"), call)
                .await?
        }
        SchemaCommand::Get { path, history } => {
            let query = if history { "?history=true" } else { "" };
            remote
                .call(Method::GET, &format!("/v1/schemas/{path}{query}"), Call::default())
                .await?
        }
        SchemaCommand::Ls => {
            remote
                .call(Method::GET, "/v1/schemas?limit=1000", Call::default())
                .await?
        }
        SchemaCommand::Rm { path } => {
            remote
                .call(Method::DELETE, &format!("/v1/schemas/{path}"), Call::default())
                .await?
        }
    };
    print(answer);
    Ok(())
}

/// Reads a change set: `{"writes": [{"key", "value" | null, "if_match"?}], "reason"?}` in
/// JSON or YAML (YAML is a superset of JSON: one parser reads both).
fn change_set(file: &Path) -> Result<Value, CliError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let set: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is neither JSON nor YAML: {e}", file.display())))?;
    if !set["writes"].is_array() {
        return Err(CliError::Usage(format!(
            "{}: expected {{\"writes\": [{{\"key\", \"value\" | null, \"if_match\"?}}], \"reason\"?}}",
            file.display()
        )));
    }
    Ok(set)
}

/// `tagcfg apply FILE`: writes the change set all or nothing; `--dry-run` reads each key's
/// current value in the layer and prints what would change, writing nothing.
pub async fn apply(remote: &Remote, file: &Path, dry_run: bool, query: &str) -> Result<(), CliError> {
    let set = change_set(file)?;
    if !dry_run {
        let call = Call {
            body: Some(set.to_string()),
            ..Call::default()
        };
        print(
            remote
                .call(Method::POST, &format!("/v1/config:batchWrite{query}"), call)
                .await?,
        );
        return Ok(());
    }
    for write in set["writes"].as_array().into_iter().flatten() {
        let key = write["key"]
            .as_str()
            .ok_or_else(|| CliError::Usage("every write names its key".into()))?;
        let path = format!("/v1/config/{key}{query}");
        let current = match remote.call(Method::GET, &path, Call::default()).await {
            Ok(body) => serde_json::from_str::<Value>(&body)
                .ok()
                .map(|item| item["value"].clone()),
            Err(client::api::ApiError::Problem { status: 404, .. }) => None,
            Err(e) => return Err(e.into()),
        };
        println!("{}", diff_line(key, current.as_ref(), &write["value"]));
    }
    Ok(())
}

/// One line of a dry run: `+` a new key, `-` a deleted one, `~` a changed one, `=` unchanged.
fn diff_line(key: &str, current: Option<&Value>, next: &Value) -> String {
    match (current, next) {
        (None, Value::Null) => format!("= {key} (absent, stays absent)"),
        (None, next) => format!("+ {key} = {next}"),
        (Some(now), Value::Null) => format!("- {key} (was {now})"),
        (Some(now), next) if now == next => format!("= {key} = {now}"),
        (Some(now), next) => format!("~ {key}: {now} -> {next}"),
    }
}

/// `tagcfg revert KEY --to-version N` or `tagcfg revert --to-revision N`.
pub async fn revert(
    remote: &Remote,
    key: Option<String>,
    to_version: Option<u64>,
    to_revision: Option<u64>,
    query: &str,
) -> Result<(), CliError> {
    let (path, body) = match (key, to_version, to_revision) {
        (Some(key), Some(v), None) => (format!("/v1/config/{key}:revert{query}"), json!({ "to_version": v })),
        (None, None, Some(r)) => (format!("/v1/revert{query}"), json!({ "to_revision": r })),
        _ => {
            return Err(CliError::Usage(
                "revert one key with `tagcfg revert KEY --to-version N`, or the whole layer with `tagcfg revert --to-revision N`".into(),
            ))
        }
    };
    let call = Call {
        body: Some(body.to_string()),
        ..Call::default()
    };
    print(remote.call(Method::POST, &path, call).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_names_each_kind_of_change() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(diff_line("k", None, &v("1")), "+ k = 1");
        assert_eq!(diff_line("k", Some(&v("1")), &Value::Null), "- k (was 1)");
        assert_eq!(diff_line("k", Some(&v("1")), &v("2")), "~ k: 1 -> 2");
        assert_eq!(
            diff_line("k", Some(&v("{\"a\":1}")), &v("{\"a\":1}")),
            "= k = {\"a\":1}"
        );
    }

    #[test]
    fn change_sets_read_from_json_and_yaml_alike() {
        let dir = tempfile::tempdir().unwrap();
        let json_file = dir.path().join("set.json");
        std::fs::write(&json_file, r#"{"writes":[{"key":"tenant_config_a","value":{"n":1}}]}"#).unwrap();
        let yaml_file = dir.path().join("set.yaml");
        std::fs::write(
            &yaml_file,
            "writes:\n  - key: tenant_config_a\n    value:\n      n: 1\n",
        )
        .unwrap();
        assert_eq!(change_set(&json_file).unwrap(), change_set(&yaml_file).unwrap());
        std::fs::write(&yaml_file, "keys: [a]\n").unwrap();
        assert!(matches!(change_set(&yaml_file), Err(CliError::Usage(_))));
    }
}
