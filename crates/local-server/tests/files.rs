//! The data directory holds the dev secret and every value, secrets included: it is
//! owner-only, a looser one is refused with the command that fixes it, and rotating the dev
//! secret revokes every dev token.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use local_server::{LocalConfig, LocalError, LocalServer};
use tenant_auth::Scope;

fn config(dir: &Path) -> LocalConfig {
    LocalConfig::on_free_ports(dir)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_directory_is_owner_only_and_a_looser_one_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let server = LocalServer::start(config(&dir)).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("dev-secret")), 0o600);
    assert_eq!(mode(&dir.join("store.redb")), 0o600);
    server.shutdown().await.unwrap();

    std::fs::set_permissions(dir.join("store.redb"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = LocalServer::start(config(&dir))
        .await
        .err()
        .expect("a readable store is refused");
    assert!(matches!(err, LocalError::TooOpen { mode: 0o644, .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");

    std::fs::set_permissions(dir.join("store.redb"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = LocalServer::start(config(&dir))
        .await
        .err()
        .expect("an open directory is refused");
    assert!(err.to_string().contains("chmod 700"), "{err}");
}

#[tokio::test]
async fn rotating_the_dev_secret_revokes_every_dev_token() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let before = LocalServer::start(config(&dir)).await.unwrap();
    let token = before.token("acme", &[Scope::Read]).unwrap();
    let http = tenant_auth::http_client(std::time::Duration::from_secs(10)).unwrap();
    let url = format!("{}/v1/config?prefix=", before.url());
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    before.shutdown().await.unwrap();

    local_server::rotate_dev_secret(&dir).unwrap();
    let after = LocalServer::start(config(&dir)).await.unwrap();
    let url = format!("{}/v1/config?prefix=", after.url());
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 401);
    let fresh = after.token("acme", &[Scope::Read]).unwrap();
    assert_eq!(http.get(&url).bearer_auth(&fresh).send().await.unwrap().status(), 200);
    after.shutdown().await.unwrap();
}
