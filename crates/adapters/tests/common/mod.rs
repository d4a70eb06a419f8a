#[cfg(feature = "aws")]
#[allow(dead_code)]
pub mod aws;
#[allow(dead_code)]
pub mod change_log;
#[allow(dead_code)]
pub mod conformance;
