//! The router without a network: the loading state (503 everywhere but `/` and `/health`
//! answers `loading`), the API key check, the body limit, unknown routes, and the page having
//! no external references; then the same router once the tiny model is loaded; and draining
//! (after a shutdown signal: `/health` answers `draining`, API routes 503, `/metrics` answers).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bitnet_engine::BatchOptions;
use bitnet_kernels::ThreadPool;
use bitnet_model::Model;
use bitnet_server::{router, AppState, Backend, ServerConfig};
use bitnet_tokenizer::chat::ChatTemplate;
use bitnet_tokenizer::Tokenizer;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn call(
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = request
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(Arc::clone(state)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn error_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let err = v["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(err.get(field).is_some(), "error without {field}: {body}");
    }
    err
}

const CHAT: &str = r#"{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#;

#[tokio::test]
async fn loading_state_key_check_and_limits() {
    let config = ServerConfig {
        api_key: Some("sekret".into()),
        body_limit: 1000,
        ..ServerConfig::new("tiny")
    };
    let state = AppState::new(config);

    let (status, body) = call(&state, "GET", "/health", None, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"status":"loading"}"#);

    let (status, body) = call(&state, "POST", "/v1/chat/completions", None, CHAT).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&body)["code"], "invalid_api_key");
    let (status, _) = call(&state, "POST", "/v1/chat/completions", Some("wrong"), CHAT).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&state, "POST", "/v1/chat/completions", Some("sekret"), CHAT).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_of(&body)["code"], "model_loading");

    let big = format!(r#"{{"prompt":"{}"}}"#, "a".repeat(5000));
    let (status, body) = call(&state, "POST", "/v1/completions", Some("sekret"), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_of(&body)["code"], "request_too_large");

    let (status, body) = call(&state, "GET", "/v1/engines", Some("sekret"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    error_of(&body);

    let (status, body) = call(&state, "GET", "/metrics", Some("sekret"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("bitnet_model_ready 0"), "{body}");
    assert!(body.contains("bitnet_requests_total{endpoint=\"/health\",status=\"503\"} 1"));

    // The page is open, and self-contained: no script, style or font from elsewhere.
    let (status, page) = call(&state, "GET", "/", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<title>bitnet chat</title>"));
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"));
}

#[tokio::test]
async fn ready_with_the_tiny_model() {
    let path = bitnet_testdata::oracle("tiny-b158/gguf/tiny-b158-i2_s.gguf");
    let model = Model::open(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf_path(&path).unwrap();
    let template = ChatTemplate::for_model(&tokenizer).unwrap();
    let options = BatchOptions {
        slots: 2,
        context: 64,
        queue: 4,
        prefill_chunk: 32,
        cache_ram: 0,
    };
    let backend = Backend::start(
        Arc::new(model),
        Arc::new(tokenizer),
        template,
        ThreadPool::new(1),
        options,
    );
    let state = AppState::new(ServerConfig::new("tiny"));
    assert!(state.set_ready(backend).is_ok());

    let (status, body) = call(&state, "GET", "/health", None, "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"ok"}"#)
    );

    let (status, body) = call(&state, "POST", "/v1/chat/completions", None, CHAT).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );

    // A prompt longer than the 64-token context: 400 naming both numbers.
    let long = format!(r#"{{"prompt":"{}","max_tokens":1}}"#, "hello ".repeat(200));
    let (status, body) = call(&state, "POST", "/v1/completions", None, &long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error_of(&body)["message"].as_str().unwrap().to_string();
    assert!(message.contains("context holds 64"), "{message}");

    let (status, body) = call(
        &state,
        "POST",
        "/v1/chat/completions",
        None,
        r#"{"model":"other","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&body)["code"], "model_not_found");
}

#[tokio::test]
async fn draining_refuses_requests_and_says_so_on_health() {
    let state = AppState::new(ServerConfig::new("tiny"));
    state.drain.begin();

    let (status, body) = call(&state, "GET", "/health", None, "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
    );
    for (method, path, body) in [
        ("POST", "/v1/chat/completions", CHAT),
        ("POST", "/v1/completions", r#"{"prompt":"hi"}"#),
        ("GET", "/v1/models", ""),
        ("POST", "/tokenize", r#"{"content":"hi"}"#),
    ] {
        let (status, body) = call(&state, method, path, None, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        let error = error_of(&body);
        assert_eq!(error["code"], "server_shutting_down", "{path}: {body}");
        assert_eq!(error["type"], "unavailable_error", "{path}: {body}");
    }
    assert_eq!(
        state.drain.in_flight(),
        0,
        "refused requests are not counted"
    );

    let (status, body) = call(&state, "GET", "/metrics", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("bitnet_requests_total{endpoint=\"/v1/models\",status=\"503\"} 1"),
        "{body}"
    );
}
