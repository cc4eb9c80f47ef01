//! AWS adapters: DynamoDB idempotency store and audit trail, EventBridge bus, SQS dead letters,
//! Secrets Manager.
//! Each file owns its SDK conversions; this one holds what they share: loading the SDK config and
//! turning SDK failures into text and a retry decision.

pub mod audit;
pub mod dynamodb;
pub mod eventbridge;
pub mod ledger;
pub mod secrets;
pub mod sqs;
pub mod ssm;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::failure::FailureClass;

/// The SDK configuration from the environment (Lambda role, region, `AWS_ENDPOINT_URL` and the
/// per-service `AWS_ENDPOINT_URL_<SERVICE>` overrides that point the adapters at an emulator).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// An SDK error with its whole cause chain: a bare "dispatch failure" says nothing about the
/// refused connection or TLS error underneath.
pub fn render_error<E: std::error::Error>(error: &E) -> String {
    DisplayErrorContext(error).to_string()
}

/// Service error codes that mean "slow down", whatever the HTTP status says.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "LimitExceededException",
];

/// Whether an SDK failure may go away on retry: no answer (timeout, connection), an unreadable
/// answer, a 5xx or throttling. A well-formed 4xx (validation, access, missing resource) will
/// say the same thing next time. All SDK crates share this `SdkError` type.
pub fn failure_class<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> FailureClass {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureClass::Retryable
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let throttled = error.code().is_some_and(|c| THROTTLING_CODES.contains(&c));
            if status >= 500 || status == 429 || throttled {
                FailureClass::Retryable
            } else {
                FailureClass::Permanent
            }
        }
        // ConstructionFailure: the request could not even be built from our input.
        _ => FailureClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn service_error(status: u16, code: &str) -> SdkError<ErrorMetadata, HttpResponse> {
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(ErrorMetadata::builder().code(code).build(), raw)
    }

    #[test]
    fn failure_class_follows_status_and_throttling_codes() {
        let cases = [
            (500, "InternalServerError", FailureClass::Retryable),
            (503, "ServiceUnavailable", FailureClass::Retryable),
            (400, "ThrottlingException", FailureClass::Retryable),
            (
                400,
                "ProvisionedThroughputExceededException",
                FailureClass::Retryable,
            ),
            (429, "TooManyRequests", FailureClass::Retryable),
            (400, "ValidationException", FailureClass::Permanent),
            (400, "ResourceNotFoundException", FailureClass::Permanent),
            (403, "AccessDeniedException", FailureClass::Permanent),
        ];
        for (status, code, expected) in cases {
            assert_eq!(
                failure_class(&service_error(status, code)),
                expected,
                "{status} {code}"
            );
        }
    }

    #[test]
    fn no_answer_is_retryable_and_an_unbuildable_request_is_not() {
        let timeout: SdkError<ErrorMetadata, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(failure_class(&timeout), FailureClass::Retryable);
        let construction: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::construction_failure("bad input");
        assert_eq!(failure_class(&construction), FailureClass::Permanent);
    }

    #[test]
    fn rendered_error_includes_the_cause() {
        let err: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::timeout_error("connect to 127.0.0.1:9 refused");
        let text = render_error(&err);
        assert!(text.contains("connect to 127.0.0.1:9 refused"), "{text}");
        assert!(!err.to_string().contains("refused"));
    }
}
