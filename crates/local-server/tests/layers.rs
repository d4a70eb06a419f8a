//! The layer conformance suite (testkit::layers) against `tagcfg serve`: every reader
//! agrees at every step of the script.

use std::sync::Arc;

use local_server::{LocalConfig, LocalServer};
use tagged_routing::{RoutingTable, TenantId};
use tenant_auth::Scope;
use testkit::layers::{self, Deployment, InProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reader_agrees_at_every_step_on_the_local_server() {
    let dir = testkit::data_dir();
    let server = LocalServer::start(LocalConfig::on_free_ports(dir.path()))
        .await
        .unwrap();
    let deployment = Deployment {
        http_url: server.url(),
        grpc_url: server.grpc_url(),
        tenant: TenantId::parse("initech").unwrap(),
        tenant_token: server.token("initech", &[Scope::Write]).unwrap(),
        operator_token: server.operator_token().unwrap(),
        store: server.store.clone() as Arc<dyn tagged_routing::ConfigStore>,
        nonce: "local".into(),
    };
    layers::run(&deployment, &InProcess, RoutingTable::default()).await;
    server.shutdown().await.unwrap();
}
