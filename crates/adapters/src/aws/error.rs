//! The one place where AWS SDK errors become domain errors: each is retryable
//! (throttling, timeouts, 5xx, dispatch failures) or permanent, and maps to the
//! [`tagged_routing::Error`] the HTTP layer turns into a status. Call sites only handle
//! the few service codes that carry meaning (a failed condition, a missing parameter).

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tagged_routing::Error;

/// Error codes AWS uses for throttling, across DynamoDB and SSM.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyUpdates",
    "ThrottledException",
];

/// Codes that mean "try again": transient service-side trouble.
const TRANSIENT: &[&str] = &[
    "InternalServerError",
    "InternalServerErrorException",
    "ServiceUnavailable",
    "InternalError",
];

/// The error code of an SDK error, when the service sent one.
pub fn code_of<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    err.as_service_error().and_then(ProvideErrorMetadata::code)
}

/// Maps any SDK error to the domain, naming the service and the operation that failed.
pub fn from_sdk<E, R>(service: &str, operation: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::Unavailable(format!("{service} {operation}: {}", DisplayErrorContext(&err)))
        }
        SdkError::ServiceError(service_err) => {
            let e = service_err.err();
            classify(
                service,
                operation,
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or(""),
            )
        }
        _ => Error::Backend(format!("{service} {operation}: {}", DisplayErrorContext(&err))),
    }
}

/// Maps a service error code: throttling → [`Error::Throttled`], transient →
/// [`Error::Unavailable`], anything else (access denied, missing table, validation) →
/// [`Error::Backend`], which is permanent.
pub fn classify(service: &str, operation: &str, code: &str, message: &str) -> Error {
    if THROTTLING.contains(&code) {
        Error::Throttled {
            backend: service.to_owned(),
            retry_after_secs: 1,
        }
    } else if TRANSIENT.contains(&code) {
        Error::Unavailable(format!("{service} {operation}: {code}: {message}"))
    } else {
        Error::Backend(format!("{service} {operation}: {code}: {message}"))
    }
}

/// A response that broke the contract (a missing attribute, a corrupt item).
pub fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Backend(format!("unexpected data from AWS: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_retryable_or_permanent() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "TooManyUpdates",
        ] {
            let e = classify("SSM", "PutParameter", code, "slow down");
            assert!(matches!(e, Error::Throttled { .. }) && e.is_retryable(), "{code}");
        }
        let e = classify("DynamoDB", "GetItem", "InternalServerError", "");
        assert!(matches!(e, Error::Unavailable(_)) && e.is_retryable());
        for code in [
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ValidationException",
        ] {
            let e = classify("DynamoDB", "GetItem", code, "no");
            assert!(matches!(e, Error::Backend(_)) && !e.is_retryable(), "{code}");
        }
    }
}
