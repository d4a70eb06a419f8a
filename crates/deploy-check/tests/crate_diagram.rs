//! Keeps the crate diagram of docs/ARCHITECTURE.md ("Crates and their direction") in step
//! with the manifests: each line `crate (note) ──▶ a, b` names exactly the crate's normal
//! dependencies inside the workspace, `crate (note) ╌╌▶ a, b` exactly its dev-dependencies
//! (written for the crates that have nothing else), and every workspace crate has a line.
//! The manifests are read through `cargo metadata`, as cargo itself sees them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const NORMAL: &str = "──▶";
const DEV: &str = "╌╌▶";

type Edges = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (normal, dev) workspace-internal dependencies of every workspace crate.
fn manifests() -> (Edges, Edges) {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (mut normal, mut dev) = (Edges::new(), Edges::new());
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        normal.entry(name.clone()).or_default();
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let target = dependency["name"].as_str().unwrap_or_default().to_owned();
            if !members.contains(&target) {
                continue;
            }
            match dependency["kind"].as_str() {
                None => normal.entry(name.clone()).or_default().insert(target),
                Some("dev") => dev.entry(name.clone()).or_default().insert(target),
                Some(_) => false,
            };
        }
    }
    (normal, dev)
}

/// (normal, dev) edges as the diagram draws them.
fn diagram() -> (Edges, Edges) {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let section = doc
        .split("## Crates and their direction")
        .nth(1)
        .expect("a section 'Crates and their direction'");
    let block = section.split("```").nth(1).expect("the diagram in a code block");
    let (mut normal, mut dev) = (Edges::new(), Edges::new());
    for line in block.lines().skip(2) {
        let (arrow, edges) = if line.contains(NORMAL) {
            (NORMAL, &mut normal)
        } else if line.contains(DEV) {
            (DEV, &mut dev)
        } else {
            continue;
        };
        let (from, to) = line.split_once(arrow).expect("an arrow");
        let from = from.split_whitespace().next().expect("a crate name").to_owned();
        let targets = edges.entry(from).or_default();
        // A note after a name, in parentheses, is for the reader.
        let names = to.split(',').map(|t| t.split('(').next().unwrap_or_default().trim());
        for target in names.filter(|t| !t.is_empty()) {
            targets.insert(target.to_owned());
        }
    }
    (normal, dev)
}

#[test]
fn the_crate_diagram_draws_every_dependency_and_no_other() {
    let (normal, dev) = manifests();
    let (drawn_normal, drawn_dev) = diagram();
    for (name, depends_on) in &normal {
        let has_dev_line = drawn_dev.contains_key(name);
        assert!(
            drawn_normal.contains_key(name) || has_dev_line,
            "the diagram has no line for the crate {name}"
        );
        if drawn_normal.contains_key(name) || !depends_on.is_empty() {
            assert_eq!(
                drawn_normal.get(name).cloned().unwrap_or_default(),
                *depends_on,
                "{name}'s dependencies ({NORMAL}) in the diagram differ from its Cargo.toml"
            );
        }
        if has_dev_line {
            assert_eq!(
                drawn_dev[name],
                dev.get(name).cloned().unwrap_or_default(),
                "{name}'s dev-dependencies ({DEV}) in the diagram differ from its Cargo.toml"
            );
        }
    }
    for name in drawn_normal.keys().chain(drawn_dev.keys()) {
        assert!(
            normal.contains_key(name),
            "the diagram draws {name}, which is no workspace crate"
        );
    }
}

/// The crates `cargo tree` says `package` links, with the features cargo resolves for it
/// alone (what `cargo build -p package` compiles).
fn linked(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn no_production_binary_links_a_test_crate_and_the_cli_links_no_aws_sdk() {
    let test_only = ["testkit", "e2e", "deploy-check", "xtask"];
    for binary in [
        "tagcfg",
        "config-api",
        "stream-publisher",
        "cache-refresher",
        "watch-server",
    ] {
        let crates = linked(binary);
        assert!(crates.contains(binary), "cargo tree lists {binary} itself");
        for test_crate in test_only {
            assert!(
                !crates.contains(test_crate),
                "{binary} links the test-only crate {test_crate}"
            );
        }
    }
    // `make run` on a fresh clone compiles only what the local server runs.
    let cli = linked("tagcfg");
    let aws: Vec<_> = cli
        .iter()
        .filter(|c| c.starts_with("aws-sdk-") || c.starts_with("aws-config") || c.starts_with("aws-smithy"))
        .collect();
    assert!(aws.is_empty(), "the tagcfg CLI links AWS SDK crates: {aws:?}");
    assert!(
        linked("watch-server").contains("aws-sdk-dynamodb"),
        "the check sees the SDK where it is"
    );
}
