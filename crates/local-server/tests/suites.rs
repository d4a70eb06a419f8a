//! The conformance suites of `testkit` against `tagcfg serve`: the layer suite (every reader
//! agrees at every step of the script) and the governance suite (schemas, override
//! policies, change sets, reverts, provenance).

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
