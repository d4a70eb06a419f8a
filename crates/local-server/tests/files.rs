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

fn store_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("store.redb")).unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn secret_of(server: &LocalServer) -> String {
    let owner = tagged_routing::Owner::parse("acme").unwrap();
    let key = server.store.routes().parse_key("secret_config_payments/key").unwrap();
    let item = tagged_routing::ConfigStore::get(server.store.as_ref(), &owner, &key)
        .await
        .unwrap();
    item.expect("the secret is there").value.as_str().to_owned()
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_a_key_rotation_reseals_them() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let marker = "\"sk_live_plaintext_marker\"";
    let server = LocalServer::start(config(&dir)).await.unwrap();
    let owner = tagged_routing::Owner::parse("acme").unwrap();
    let key = server.store.routes().parse_key("secret_config_payments/key").unwrap();
    let value = tagged_routing::JsonText::parse(marker).unwrap();
    let store = server.store.clone();
    tagged_routing::ConfigStore::put(
        store.as_ref(),
        &owner,
        &key,
        &value,
        tagged_routing::Precondition::None,
        "t",
    )
    .await
    .unwrap();
    assert_eq!(secret_of(&server).await, marker);
    assert_eq!(mode(&dir.join("store-keys")), 0o600);
    // A running server holds the store: rotation refuses and changes nothing.
    let keys_before = std::fs::read_to_string(dir.join("store-keys")).unwrap();
    let err = local_server::rotate_store_key(&dir, &tagged_routing::RoutingTable::default()).unwrap_err();
    assert!(matches!(err, LocalError::InUse(_)), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("store-keys")).unwrap(), keys_before);
    server.shutdown().await.unwrap();
    drop(store);
    assert!(
        !contains(&store_bytes(&dir), "sk_live_plaintext_marker"),
        "a secret is stored in clear"
    );

    let rotated = local_server::rotate_store_key(&dir, &tagged_routing::RoutingTable::default()).unwrap();
    assert_eq!(
        rotated,
        local_server::Rotated {
            key_id: "k2".into(),
            // The value, and its version kept for a revert.
            resealed: 2
        }
    );
    let keys = std::fs::read_to_string(dir.join("store-keys")).unwrap();
    assert_eq!(keys.lines().count(), 1, "the old key was not dropped");
    assert!(keys.starts_with("k2 "));
    assert_eq!(mode(&dir.join("store-keys")), 0o600);

    let again = LocalServer::start(config(&dir)).await.unwrap();
    assert_eq!(secret_of(&again).await, marker, "the resealed secret reads back");
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn secrets_an_older_store_kept_in_clear_are_sealed_on_start() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let routes = tagged_routing::RoutingTable::default();
    let owner = tagged_routing::Owner::parse("acme").unwrap();
    let key = routes.parse_key("secret_config_payments/key").unwrap();
    {
        let clear = adapters::local::RedbStore::open(&dir.join("store.redb")).unwrap();
        let value = tagged_routing::JsonText::parse("\"old\"").unwrap();
        tagged_routing::ConfigStore::put(&clear, &owner, &key, &value, tagged_routing::Precondition::None, "t")
            .await
            .unwrap();
    }
    std::fs::set_permissions(dir.join("store.redb"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = LocalServer::start(config(&dir)).await.unwrap();
    assert_eq!(secret_of(&server).await, "\"old\"");
    server.shutdown().await.unwrap();
    // Without the keyring the row no longer opens: it is sealed.
    let keyless = adapters::local::RedbStore::open(&dir.join("store.redb")).unwrap();
    let err = tagged_routing::ConfigStore::get(&keyless, &owner, &key)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sealed"), "{err}");
}
