//! Checks what `sam build` left in `.aws-sam/build`: for every Rust function of the built
//! template, a `bootstrap` that is an executable ELF for the requested architecture, needs
//! no glibc newer than provided.al2023's, and starts: it finishes its init and polls the
//! stub Runtime API for its first event. An arm64 bootstrap on an x86_64 machine runs under
//! qemu-user with Debian's aarch64 glibc (qemu-user, libc6-arm64-cross).

use std::path::Path;
use std::time::Duration;

use serde_yaml::Value;

use crate::runtime_stub::RuntimeApi;

/// provided.al2023's glibc.
const AL2023_GLIBC: (u32, u32) = (2, 34);
const AARCH64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// The least each binary needs to finish its init; nothing is contacted before the first
/// event.
fn start_env(binary: &str) -> &'static [(&'static str, &'static str)] {
    match binary {
        "config-api" => &[
            ("TAGCFG_TABLE", "tagcfg-config"),
            ("TAGCFG_COGNITO_USER_POOL_ID", "us-east-1_Check"),
            ("TAGCFG_AUDIENCES", "check-client"),
        ],
        "stream-publisher" => &[("TAGCFG_EVENT_BUS", "tagcfg")],
        "cache-refresher" => &[
            ("TAGCFG_TABLE", "tagcfg-config"),
            ("TAGCFG_WATCH_ENDPOINTS", "http://127.0.0.1:1"),
            ("TAGCFG_SERVICE_SECRET", "check-service-secret-0123456789abcdef"),
        ],
        _ => &[],
    }
}

/// ELF `e_machine` of each architecture.
fn elf_machine(arch: &str) -> Option<u16> {
    match arch {
        "x86_64" => Some(0x3E),
        "arm64" => Some(0xB7),
        _ => None,
    }
}

/// The newest `GLIBC_2.N` symbol version the binary names.
fn glibc_needed(data: &[u8]) -> (u32, u32) {
    const MARK: &[u8] = b"GLIBC_2.";
    let mut newest = (2, 0);
    let mut at = 0;
    while let Some(found) = data[at..].windows(MARK.len()).position(|w| w == MARK) {
        let start = at + found + MARK.len();
        let digits: String = data[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        if let Ok(minor) = digits.parse::<u32>() {
            newest = newest.max((2, minor));
        }
        at = start;
    }
    newest
}

/// How to start a binary of `arch` here.
fn runner_for(arch: &str) -> Result<Vec<String>, String> {
    let here = std::env::consts::ARCH;
    if here == arch || (arch == "arm64" && here == "aarch64") {
        return Ok(Vec::new());
    }
    let qemu = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("qemu-aarch64").is_file()))
        .unwrap_or(false);
    if arch == "arm64" && Path::new(AARCH64_SYSROOT).is_dir() && qemu {
        return Ok(vec!["qemu-aarch64".into(), "-L".into(), AARCH64_SYSROOT.into()]);
    }
    Err(format!(
        "cannot start {arch} binaries on {here}: install qemu-user and libc6-arm64-cross"
    ))
}

/// The template's Rust functions: (logical name, binary).
fn rust_functions(template: &Value) -> Vec<(String, String)> {
    let Some(resources) = template["Resources"].as_mapping() else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|(_, r)| {
            r["Type"].as_str() == Some("AWS::Serverless::Function")
                && r["Metadata"]["BuildMethod"].as_str() == Some("rust-cargolambda")
        })
        .filter_map(|(name, r)| {
            Some((
                name.as_str()?.to_owned(),
                r["Metadata"]["BuildProperties"]["Binary"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Checks every bootstrap under `root/.aws-sam/build`; prints a line per function, and
/// returns every problem found.
pub fn check(root: &Path, arch: &str) -> Result<(), Vec<String>> {
    let build = root.join(".aws-sam/build");
    let machine = elf_machine(arch).ok_or_else(|| vec![format!("ARCH must be arm64 or x86_64, not '{arch}'")])?;
    let text = std::fs::read_to_string(build.join("template.yaml"))
        .map_err(|e| vec![format!("{}: {e}", build.join("template.yaml").display())])?;
    let template: Value = serde_yaml::from_str(&text).map_err(|e| vec![format!("the built template: {e}")])?;
    let functions = rust_functions(&template);
    if functions.is_empty() {
        return Err(vec!["the built template has no rust-cargolambda function".into()]);
    }
    let runner = runner_for(arch).map_err(|e| vec![e])?;
    let stub = RuntimeApi::start().map_err(|e| vec![format!("the stub Runtime API: {e}")])?;
    let mut errors = Vec::new();
    for (name, binary) in functions {
        let bootstrap = build.join(&name).join("bootstrap");
        let data = match std::fs::read(&bootstrap) {
            Ok(data) => data,
            Err(e) => {
                errors.push(format!("{name}: {}: {e}", bootstrap.display()));
                continue;
            }
        };
        if data.len() < 20 || &data[..4] != b"\x7fELF" {
            errors.push(format!("{name}: bootstrap is not an ELF executable"));
            continue;
        }
        let found = u16::from_le_bytes([data[18], data[19]]);
        if found != machine {
            errors.push(format!(
                "{name}: bootstrap is built for ELF machine {found:#x}, not {arch}"
            ));
            continue;
        }
        let needed = glibc_needed(&data);
        if needed > AL2023_GLIBC {
            errors.push(format!(
                "{name}: bootstrap needs glibc {}.{}, provided.al2023 has {}.{}",
                needed.0, needed.1, AL2023_GLIBC.0, AL2023_GLIBC.1
            ));
            continue;
        }
        match stub.time_to_ready(&bootstrap, start_env(&binary), Duration::from_secs(30), &runner) {
            Ok(init) => println!(
                "{name:24} {binary:17} {arch:7} {:6.2} MiB  glibc >= {}.{}  starts: init {:.1} ms{}",
                data.len() as f64 / 1_048_576.0,
                needed.0,
                needed.1,
                init.as_secs_f64() * 1000.0,
                if runner.is_empty() { "" } else { " under qemu" }
            ),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_glibc_version_is_found() {
        assert_eq!(glibc_needed(b"x GLIBC_2.17\0GLIBC_2.34\0GLIBC_2.5\0"), (2, 34));
        assert_eq!(glibc_needed(b"no versions"), (2, 0));
    }
}
