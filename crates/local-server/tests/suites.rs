//! The conformance suites of `testkit` against `tagcfg serve`: the layer suite (every reader
//! agrees at every step of the script), the governance suite (schemas, override
//! policies, change sets, reverts, provenance) and the linearizability check.

use std::sync::Arc;

use local_server::{LocalConfig, LocalServer};
use tagged_routing::{RoutingTable, TenantId};
use tenant_auth::Scope;
use testkit::layers::{self, Deployment, InProcess};

/// A fresh server, and the suites' view of it (tenant `initech`).
async fn deployment(dir: &std::path::Path) -> (LocalServer, Deployment) {
    let server = LocalServer::start(LocalConfig::on_free_ports(dir)).await.unwrap();
    let deployment = Deployment {
        http_url: server.url(),
        grpc_url: server.grpc_url(),
        tenant: TenantId::parse("initech").unwrap(),
        tenant_token: server.token("initech", &[Scope::Write]).unwrap(),
        operator_token: server.operator_token().unwrap(),
        store: server.store.clone() as Arc<dyn tagged_routing::ConfigStore>,
        nonce: "local".into(),
    };
    (server, deployment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reader_agrees_at_every_step_on_the_local_server() {
    let dir = testkit::data_dir();
    let (server, deployment) = deployment(dir.path()).await;
    layers::run(&deployment, &InProcess, RoutingTable::default()).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_override_policies_govern_every_write_on_the_local_server() {
    let dir = testkit::data_dir();
    let (server, deployment) = deployment(dir.path()).await;
    testkit::governance::run(&deployment, &InProcess).await;
    server.shutdown().await.unwrap();
}

/// 10,000 operations from 8 clients on 3 keys, checked against a versioned register. The
/// tenant's rate limits are raised so the run measures the store, not the token buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_http_operations_are_linearizable_on_the_local_server() {
    let dir = testkit::data_dir();
    let mut config = LocalConfig::on_free_ports(dir.path());
    config.tenant_limits = local_server::TenantLimits {
        reads_per_sec: 100_000,
        read_burst: 100_000,
        writes_per_sec: 100_000,
        write_burst: 100_000,
    };
    let server = LocalServer::start(config).await.unwrap();
    let workload = testkit::linearizability::Workload {
        clients: 8,
        keys: ["a", "b", "c"].map(|k| format!("tenant_config_lin/{k}")).to_vec(),
        operations: 10_000,
        seed: 1,
    };
    let token = server.token("initech", &[Scope::Write]).unwrap();
    let report = testkit::linearizability::record_and_check(&server.url(), &token, &workload).await;
    testkit::report(&format!("linearizability, local server (redb): {report}"));
    assert_eq!(report.operations, 10_000, "{report}");
    assert_eq!(report.unknown, 0, "{report}");
    assert_eq!(report.anomalies, 0, "{report}");
    server.shutdown().await.unwrap();
}
