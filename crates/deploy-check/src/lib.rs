//! Tests only: `tests/template.rs` keeps `template.yaml` in step with the code.
