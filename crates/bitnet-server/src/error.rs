//! Errors as the server answers them: OpenAI's JSON error shape
//! (`{"error":{"message","type","param","code"}}`) with the matching HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bitnet_engine::SubmitError;
use serde::Serialize;

/// An error answer: status, OpenAI error `type`, message, and the request field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

/// The body of an error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// The `error` object of an error answer.
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl ApiError {
    /// 400 `invalid_request_error`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 400 naming the request field at fault.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.to_string()),
            ..Self::bad_request(message)
        }
    }

    /// 401: missing or wrong API key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            message: message.into(),
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 404 for a path the server does not have.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found_error",
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 404 for a model the server does not serve.
    pub fn unknown_model(requested: &str, served: &str) -> Self {
        ApiError {
            param: Some("model".into()),
            code: Some("model_not_found"),
            ..Self::not_found(format!(
                "the model {requested:?} does not exist here: this server serves {served:?}"
            ))
        }
    }

    /// 405 for a known path asked with the wrong method.
    pub fn method_not_allowed() -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            kind: "invalid_request_error",
            message: "method not allowed on this path".into(),
            param: None,
            code: None,
        }
    }

    /// 503 while the model loads.
    pub fn loading() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable_error",
            message: "the model is still loading: retry shortly".into(),
            param: None,
            code: Some("model_loading"),
        }
    }

    /// 503 for a request that arrives while the server drains before shutting down.
    pub fn shutting_down() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable_error",
            message: "the server is shutting down and admits no new requests: retry on another \
                      replica"
                .into(),
            param: None,
            code: Some("server_shutting_down"),
        }
    }

    /// 503 ending an answer still running when the shutdown grace period ran out.
    pub fn cut_off_by_shutdown() -> Self {
        ApiError {
            message: "the server shut down before this answer was finished (the shutdown grace \
                      period ran out)"
                .into(),
            ..Self::shutting_down()
        }
    }

    /// 500: generation failed inside the engine.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::EmptyPrompt => ApiError::invalid_param("prompt", message),
            SubmitError::PromptTooLong { .. } => ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid_param("messages", message)
            },
            SubmitError::QueueFull { .. } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                message,
                param: None,
                code: Some("queue_full"),
            },
            SubmitError::Stopped => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "unavailable_error",
                message,
                param: None,
                code: Some("engine_stopped"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
