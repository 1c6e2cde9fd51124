//! What a `POST /mcp` body must be before rmcp reads it: no larger than
//! `[mcp] max_request_body_bytes` (a `Content-Length` over it is answered
//! `413` without reading the body; a body that grows past it while read,
//! too), sent whole within the header-read timeout (else `408`), complete
//! (a body that ends early: `400`), and JSON (else `400` with the JSON-RPC
//! parse error `-32700`). A JSON body that is no JSON-RPC message, which
//! rmcp answers `415`, is answered `400` with `-32600` (invalid request).
//! Answers that leave a body unread close the connection.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};

/// JSON-RPC 2.0: invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: the JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;

/// The limits a request body is read within.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Time to receive the whole body.
    pub timeout: Duration,
}

/// Why a body was not read whole.
enum Unread {
    TooLarge,
    Broken(String),
}

/// Middleware for `/mcp`: checks and buffers a POST body (see the module
/// documentation), then passes the request on.
pub async fn check_body(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return too_large(limits.max_bytes);
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(limits.timeout, collect(body, limits.max_bytes)).await {
        Err(_) => {
            return closing(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                "the request body was not received within {} s ([mcp] header_read_timeout_seconds)",
                limits.timeout.as_secs()
            ),
            )
        }
        Ok(Err(Unread::TooLarge)) => return too_large(limits.max_bytes),
        Ok(Err(Unread::Broken(why))) => {
            return closing(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read whole: {why}"),
            )
        }
        Ok(Ok(bytes)) => bytes,
    };
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            PARSE_ERROR,
            &format!("Parse error: the body is not JSON: {e}"),
        );
    }
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if json && response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "Invalid Request: the body is JSON but not a JSON-RPC 2.0 message an MCP server accepts",
        );
    }
    response
}

/// Reads `body` whole, refusing more than `max` bytes.
async fn collect(mut body: Body, max: usize) -> Result<Bytes, Unread> {
    let mut collected = BytesMut::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| Unread::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if data.len() > max.saturating_sub(collected.len()) {
                return Err(Unread::TooLarge);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

fn too_large(max: usize) -> Response {
    closing(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body exceeds {max} bytes ([mcp] max_request_body_bytes)"),
    )
}

/// A plain-text answer after which the connection is closed (its body
/// may be unread).
fn closing(status: StatusCode, message: String) -> Response {
    (status, [(header::CONNECTION, "close")], message).into_response()
}

/// `status` with a JSON-RPC error object (id null: the request's id is
/// unknown).
pub(crate) fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
