//! Tenant-scoped credentials against moto's STS and DynamoDB Local: each tenant request
//! assumes the tenant-access role with the session tag `tenant=<id>`, once per session;
//! at most `capacity` tenants are kept; a store of one tenant's credentials refuses any
//! other tenant's layer. moto does not evaluate IAM conditions, so the refusal shown here
//! is the guard in the code ([`tagged_routing::scope::Fenced`]); the policy that would
//! refuse it at AWS is `TenantAccessRole` in template.yaml (checked by deploy-check).
#![cfg(feature = "aws")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::aws::scoped::{TenantRole, TenantScopedStores};
use aws_sdk_sts::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents};
use tagged_routing::scope::as_tenant;
use tagged_routing::{ConfigStore, Error, JsonText, Owner, Precondition, RoutingTable, TenantId};

/// The bodies of the STS requests sent.
#[derive(Debug, Clone, Default)]
struct Sent(Arc<Mutex<Vec<String>>>);

impl Intercept for Sent {
    fn name(&self) -> &'static str {
        "Sent"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let body = context.request().body().bytes().unwrap_or_default();
        self.0.lock().unwrap().push(String::from_utf8_lossy(body).into_owned());
        Ok(())
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

#[tokio::test]
async fn each_tenant_request_runs_on_credentials_tagged_with_its_tenant() {
    let Some(sdk) = testkit::emulators::sdk_config_or_skip(
        "each_tenant_request_runs_on_credentials_tagged_with_its_tenant",
        &["DYNAMODB", "SSM", "STS"],
    )
    .await
    else {
        return;
    };
    let (base, settings) = common::aws::store(&sdk, "scoped").await;
    let sent = Sent::default();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&sdk)
            .interceptor(sent.clone())
            .build(),
    );
    let role = TenantRole {
        role_arn: "arn:aws:iam::123456789012:role/tagcfg-tenant-access".into(),
        session_secs: 900,
        refresh_before: Duration::from_secs(120),
        capacity: 2,
    };
    let stores = TenantScopedStores::new(Arc::new(base), &sdk, RoutingTable::default(), settings, role).with_sts(sts);
    let key = RoutingTable::default().parse_key("tenant_config_limits").unwrap();
    let value = JsonText::parse(r#"{"rps":5}"#).unwrap();
    let (acme, globex) = (Owner::Tenant(tenant("acme")), Owner::Tenant(tenant("globex")));

    // An operator call (no tenant request) runs on the function's own role: no AssumeRole.
    stores
        .put(&Owner::Shared, &key, &value, Precondition::None, "ops")
        .await
        .unwrap();
    assert_eq!(stores.roles_assumed(), 0);

    // acme's request: one AssumeRole, then its credentials are reused.
    as_tenant(tenant("acme"), async {
        stores
            .put(&acme, &key, &value, Precondition::None, "acme-user")
            .await
            .unwrap();
        assert_eq!(
            stores.get(&acme, &key).await.unwrap().unwrap().value.as_str(),
            value.as_str()
        );
        assert!(
            stores.get(&Owner::Shared, &key).await.unwrap().is_some(),
            "the shared layer is readable"
        );
        // The wrong owner inside acme's request: refused before any AWS call.
        for refused in [
            stores.get(&globex, &key).await.map(|_| ()),
            stores
                .put(&globex, &key, &value, Precondition::None, "acme-user")
                .await
                .map(|_| ()),
            stores
                .put(&Owner::Shared, &key, &value, Precondition::None, "acme-user")
                .await
                .map(|_| ()),
        ] {
            assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
        }
    })
    .await;
    assert_eq!(stores.roles_assumed(), 1, "one session for all of acme's calls");

    // A store built from acme's credentials refuses globex, even outside any request.
    let acme_store = stores.store_for(&tenant("acme")).await.unwrap();
    let refused = acme_store.get(&globex, &key).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    assert_eq!(stores.roles_assumed(), 1);

    // globex, then a third tenant: capacity 2 keeps the two most recently used.
    as_tenant(tenant("globex"), async {
        assert!(
            stores.get(&globex, &key).await.unwrap().is_none(),
            "globex sees none of acme's values"
        );
    })
    .await;
    as_tenant(
        tenant("initech"),
        stores.head_revision(&Owner::Tenant(tenant("initech"))),
    )
    .await
    .unwrap();
    assert_eq!((stores.roles_assumed(), stores.tenants_kept()), (3, 2));
    as_tenant(tenant("acme"), stores.get(&acme, &key)).await.unwrap();
    assert_eq!(
        stores.roles_assumed(),
        4,
        "acme was the least recently used: evicted, assumed again"
    );

    let sent = sent.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 4, "{sent:?}");
    for (body, id) in sent.iter().zip(["acme", "globex", "initech", "acme"]) {
        assert!(body.contains("Action=AssumeRole"), "{body}");
        assert!(body.contains("Tags.member.1.Key=tenant"), "{body}");
        assert!(body.contains(&format!("Tags.member.1.Value={id}")), "{body}");
        assert!(body.contains(&format!("RoleSessionName=t-{id}")), "{body}");
        assert!(body.contains("DurationSeconds=900"), "{body}");
    }
    testkit::report(&format!(
        "tenant-scoped credentials: {} AssumeRole calls for 4 tenant sessions, session tags checked, 4 cross-tenant calls refused",
        sent.len()
    ));
}
