//! The governance suite (testkit::governance) against `tagcfg serve`.

use std::sync::Arc;

use local_server::{LocalConfig, LocalServer};
use tagged_routing::TenantId;
use tenant_auth::Scope;
use testkit::layers::{Deployment, InProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_override_policies_govern_every_write_on_the_local_server() {
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
    testkit::governance::run(&deployment, &InProcess).await;
    server.shutdown().await.unwrap();
}
