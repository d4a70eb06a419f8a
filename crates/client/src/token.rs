//! Where the client's bearer tokens come from.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::ClientError;

/// Supplies the bearer token of each call and each (re)connect, so tokens can rotate under
/// a long-lived client (a Cognito refresh, a secrets manager). Called often: cache the
/// token and refresh it before it expires.
pub trait TokenProvider: Send + Sync + 'static {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send + '_>>;
}

/// One token for the life of the client.
#[derive(Clone)]
pub struct StaticToken(pub String);

impl TokenProvider for StaticToken {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send + '_>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// A provider from an async closure: `TokenFn::new(|| async { Ok(fetch().await) })`.
pub struct TokenFn<F>(F);

impl<F, Fut> TokenFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ClientError>> + Send + 'static,
{
    pub fn new(f: F) -> Arc<Self> {
        Arc::new(TokenFn(f))
    }
}

impl<F, Fut> TokenProvider for TokenFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, ClientError>> + Send + 'static,
{
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send + '_>> {
        Box::pin((self.0)())
    }
}
