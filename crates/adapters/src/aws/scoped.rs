//! Tenant-scoped AWS credentials: the second wall behind the token check.
//!
//! A request of tenant `T` reaches DynamoDB and SSM with credentials of the tenant-access
//! role assumed with the STS session tag `tenant=T`; that role's policy (template.yaml,
//! `TenantAccessRole`) allows DynamoDB only where `dynamodb:LeadingKeys` is `T#T` (plus
//! reads of `T#_shared` and `T#_tier_*`) and SSM only under `/<root>/T/` (plus reads of the
//! shared and tier paths). A bug that let a request reach the store with another tenant's
//! owner would meet [`Fenced`] in the code and `AccessDenied` at AWS.
//!
//! [`TenantScopedStores`] is a [`ConfigStore`] that sends each call of a tenant request
//! ([`request_tenant`]) to that tenant's own store, built from its credentials and
//! [`Fence::Pinned`] to it; calls outside a tenant request (operators, the feed) go to the
//! base store, on the function's own role. Credentials are kept per tenant until
//! [`TenantRole::refresh_before`] their expiry, for at most [`TenantRole::capacity`]
//! tenants (the least recently used one leaves first).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use tagged_routing::env::{self, EnvError, Lookup};
use tagged_routing::scope::{request_tenant, Fence, Fenced};
use tagged_routing::{
    Author, Change, ConfigItem, ConfigStore, Error, HistoryEntry, JsonText, Key, Owner, Page, Precondition, Result,
    Revision, RoutingTable, SetWrite, TenantId, TierName, Version,
};

use super::{error::from_sdk, tagged_store, AwsSettings, Clients};

/// The STS session tag that carries the tenant; the role's policies read it as
/// `${aws:PrincipalTag/tenant}`.
pub const TENANT_TAG: &str = "tenant";

/// The tenant-access role and how its credentials are kept.
#[derive(Debug, Clone)]
pub struct TenantRole {
    /// `TAGCFG_TENANT_ROLE_ARN`: the role assumed per tenant (unset: no scoping).
    pub role_arn: String,
    /// `TAGCFG_TENANT_CREDENTIALS_SECS` (default 900, STS's minimum): the session length.
    pub session_secs: i32,
    /// `TAGCFG_TENANT_CREDENTIALS_REFRESH_SECS` (default 120): a session is replaced this
    /// long before it expires, so no call starts with credentials about to lapse.
    pub refresh_before: Duration,
    /// `TAGCFG_TENANT_CREDENTIALS` (default 1000): tenants whose credentials are kept.
    pub capacity: usize,
}

impl TenantRole {
    /// The role from the environment; `None` when `TAGCFG_TENANT_ROLE_ARN` is unset or
    /// empty (local use, or a deployment that switched scoping off).
    pub fn from_lookup(get: &impl Lookup) -> std::result::Result<Option<Self>, EnvError> {
        let Some(role_arn) = get("TAGCFG_TENANT_ROLE_ARN").filter(|a| !a.trim().is_empty()) else {
            return Ok(None);
        };
        let session_secs = env::number(get, "TAGCFG_TENANT_CREDENTIALS_SECS", 900)?;
        if !(900..=43_200).contains(&session_secs) {
            return Err(EnvError::invalid(
                "TAGCFG_TENANT_CREDENTIALS_SECS",
                "an STS session lasts 900 to 43200 seconds",
            ));
        }
        let refresh = env::number(get, "TAGCFG_TENANT_CREDENTIALS_REFRESH_SECS", 120)?;
        if refresh >= session_secs {
            return Err(EnvError::invalid(
                "TAGCFG_TENANT_CREDENTIALS_REFRESH_SECS",
                "must be shorter than the session",
            ));
        }
        Ok(Some(TenantRole {
            role_arn: role_arn.trim().to_owned(),
            session_secs: session_secs as i32,
            refresh_before: Duration::from_secs(refresh),
            capacity: env::number(get, "TAGCFG_TENANT_CREDENTIALS", 1000)?.max(1) as usize,
        }))
    }
}

struct Kept {
    store: Arc<dyn ConfigStore>,
    refresh_at: Instant,
    last_used: u64,
}

/// Each tenant request's calls on a store of that tenant's own credentials.
pub struct TenantScopedStores {
    base: Arc<dyn ConfigStore>,
    sts: aws_sdk_sts::Client,
    sdk: aws_config::SdkConfig,
    routes: RoutingTable,
    settings: AwsSettings,
    role: TenantRole,
    kept: Mutex<HashMap<TenantId, Kept>>,
    uses: AtomicU64,
    assumed: AtomicU64,
}

impl TenantScopedStores {
    /// `base` serves calls outside tenant requests; tenant stores are built like it, from
    /// `sdk` with each tenant's credentials.
    pub fn new(
        base: Arc<dyn ConfigStore>,
        sdk: &aws_config::SdkConfig,
        routes: RoutingTable,
        settings: AwsSettings,
        role: TenantRole,
    ) -> Self {
        TenantScopedStores {
            base,
            sts: aws_sdk_sts::Client::new(sdk),
            sdk: sdk.clone(),
            routes,
            settings,
            role,
            kept: Mutex::new(HashMap::new()),
            uses: AtomicU64::new(0),
            assumed: AtomicU64::new(0),
        }
    }

    /// A server's AWS store: the `TaggedStore` of `clients` (the server's own role) alone
    /// without a tenant role, or behind [`TenantScopedStores`] with one.
    pub fn server_store(
        clients: &Clients,
        sdk: &aws_config::SdkConfig,
        routes: RoutingTable,
        settings: &AwsSettings,
        role: Option<TenantRole>,
    ) -> Result<Arc<dyn ConfigStore>> {
        let base: Arc<dyn ConfigStore> = Arc::new(tagged_store(clients, routes.clone(), settings)?);
        Ok(match role {
            Some(role) => Arc::new(TenantScopedStores::new(base, sdk, routes, settings.clone(), role)),
            None => base,
        })
    }

    /// Assumes roles through `sts` instead of a client of the SDK configuration (tests
    /// record its requests).
    pub fn with_sts(mut self, sts: aws_sdk_sts::Client) -> Self {
        self.sts = sts;
        self
    }

    /// How many times a tenant role was assumed (a measure of the credential cache).
    pub fn roles_assumed(&self) -> u64 {
        self.assumed.load(Ordering::Relaxed)
    }

    /// How many tenants' credentials are kept now.
    pub fn tenants_kept(&self) -> usize {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The store of `tenant`'s own credentials, assuming the role when none is kept or the
    /// kept one is due for refresh.
    pub async fn store_for(&self, tenant: &TenantId) -> Result<Arc<dyn ConfigStore>> {
        let now = Instant::now();
        let use_mark = self.uses.fetch_add(1, Ordering::Relaxed);
        {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = kept.get_mut(tenant).filter(|e| e.refresh_at > now) {
                entry.last_used = use_mark;
                return Ok(entry.store.clone());
            }
        }
        let (credentials, expires) = self.assume(tenant).await?;
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        let store = tagged_store(&Clients::from_sdk(&sdk), self.routes.clone(), &self.settings)?;
        let store: Arc<dyn ConfigStore> = Arc::new(Fenced::new(Arc::new(store), Fence::Pinned(tenant.clone())));
        let lifetime = expires
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(self.role.refresh_before);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= self.role.capacity && !kept.contains_key(tenant) {
            if let Some(oldest) = kept.iter().min_by_key(|(_, e)| e.last_used).map(|(t, _)| t.clone()) {
                kept.remove(&oldest);
            }
        }
        kept.insert(
            tenant.clone(),
            Kept {
                store: store.clone(),
                refresh_at: now + lifetime,
                last_used: use_mark,
            },
        );
        Ok(store)
    }

    async fn assume(&self, tenant: &TenantId) -> Result<(Credentials, SystemTime)> {
        let tag = aws_sdk_sts::types::Tag::builder()
            .key(TENANT_TAG)
            .value(tenant.as_str())
            .build()
            .map_err(|e| Error::Backend(format!("STS session tag: {e}")))?;
        // Session names are at most 64 characters; tenant ids at most 63.
        let session: String = format!("t-{tenant}").chars().take(64).collect();
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role.role_arn)
            .role_session_name(session)
            .duration_seconds(self.role.session_secs)
            .tags(tag)
            .send()
            .await
            .map_err(|e| from_sdk("STS", "AssumeRole", e))?;
        self.assumed.fetch_add(1, Ordering::Relaxed);
        let issued = out
            .credentials
            .ok_or_else(|| Error::Backend("AssumeRole answered no credentials".into()))?;
        let expires = SystemTime::try_from(*issued.expiration())
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(self.role.session_secs as u64));
        let credentials = Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            Some(expires),
            "tagcfg-tenant-role",
        );
        Ok((credentials, expires))
    }

    /// The store the current call goes to: its tenant's own, or the base store.
    async fn current(&self) -> Result<Arc<dyn ConfigStore>> {
        match request_tenant() {
            Some(tenant) => self.store_for(&tenant).await,
            None => Ok(self.base.clone()),
        }
    }
}

#[async_trait]
impl ConfigStore for TenantScopedStores {
    async fn get(&self, owner: &Owner, key: &Key) -> Result<Option<ConfigItem>> {
        self.current().await?.get(owner, key).await
    }

    async fn put_by(
        &self,
        owner: &Owner,
        key: &Key,
        value: &JsonText,
        precondition: Precondition,
        author: &Author,
    ) -> Result<ConfigItem> {
        self.current()
            .await?
            .put_by(owner, key, value, precondition, author)
            .await
    }

    async fn delete_by(&self, owner: &Owner, key: &Key, precondition: Precondition, author: &Author) -> Result<Change> {
        self.current().await?.delete_by(owner, key, precondition, author).await
    }

    async fn write_set(&self, owner: &Owner, writes: &[SetWrite], author: &Author) -> Result<Vec<Change>> {
        self.current().await?.write_set(owner, writes, author).await
    }

    async fn value_at(&self, owner: &Owner, key: &Key, version: Version) -> Result<Option<JsonText>> {
        self.current().await?.value_at(owner, key, version).await
    }

    async fn list(&self, owner: &Owner, prefix: &str, after: Option<&str>, limit: usize) -> Result<Page<ConfigItem>> {
        self.current().await?.list(owner, prefix, after, limit).await
    }

    async fn batch_get(&self, owner: &Owner, keys: &[Key]) -> Result<Vec<ConfigItem>> {
        self.current().await?.batch_get(owner, keys).await
    }

    async fn history(&self, owner: &Owner, key: &Key, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.current().await?.history(owner, key, limit).await
    }

    async fn changes_since(&self, owner: &Owner, since: Revision, limit: usize) -> Result<Vec<Change>> {
        self.current().await?.changes_since(owner, since, limit).await
    }

    async fn head_revision(&self, owner: &Owner) -> Result<Revision> {
        self.current().await?.head_revision(owner).await
    }

    async fn owners(&self) -> Result<Vec<Owner>> {
        self.current().await?.owners().await
    }

    async fn tier_of(&self, tenant: &TenantId) -> Result<Option<TierName>> {
        self.current().await?.tier_of(tenant).await
    }

    async fn assign_tier(&self, tenant: &TenantId, tier: Option<&TierName>, author: &Author) -> Result<Option<Change>> {
        self.current().await?.assign_tier(tenant, tier, author).await
    }
}
