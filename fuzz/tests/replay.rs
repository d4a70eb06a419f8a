//! Every input of `fuzz/corpus/<target>` and `fuzz/regressions/<target>` through its
//! target's checks, without libFuzzer: a crash `make fuzz` once found stays fixed, and the
//! seeds stay inputs the checks accept.

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("key_parser", tagcfg_fuzz::key_parser),
    ("routing_table", tagcfg_fuzz::routing_table),
    ("json_text", tagcfg_fuzz::json_text),
    ("jwt", tagcfg_fuzz::jwt),
    ("stream_record", tagcfg_fuzz::stream_record),
    ("eventbridge_event", tagcfg_fuzz::eventbridge_event),
    ("http_router", tagcfg_fuzz::http_router),
];

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read(e.path()).expect("a readable input"),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn every_corpus_and_regression_input_passes_its_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut counts = Vec::new();
    for (target, check) in TARGETS {
        let seeds = inputs(&root.join("corpus").join(target));
        let regressions = inputs(&root.join("regressions").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seed");
        for (path, data) in seeds.iter().chain(&regressions) {
            // Captured: shown only when the check panics, naming the input.
            eprintln!("replaying {path}");
            check(data);
        }
        counts.push(format!(
            "{target}: {} seeds, {} regressions",
            seeds.len(),
            regressions.len()
        ));
    }
    use std::io::Write;
    // Past libtest's capture: `make test` shows what was replayed.
    let _ = writeln!(std::io::stderr(), "fuzz replay: {}", counts.join("; "));
}
