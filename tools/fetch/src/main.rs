//! `fetch`: an HTTP GET through wasi:http to a host the node granted.
//! Arguments: `{"url": "http://host:port/path"}`. Returns the status and the
//! body (as text, at most 64 KiB).

use serde_json::{json, Value};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingResponse, Method, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

const MAX_BODY: usize = 64 * 1024;

fn main() {
    vigil_tool_abi::run(|_, args| get(vigil_tool_abi::str_arg(&args, "url")?))
}

/// `http://authority/path` split into its parts.
struct Url<'a> {
    scheme: Scheme,
    authority: &'a str,
    path: &'a str,
}

fn parse(url: &str) -> Result<Url<'_>, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(format!("url `{url}` must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("url `{url}` has no host"));
    }
    Ok(Url {
        scheme,
        authority,
        path,
    })
}

fn get(url: &str) -> Result<Value, String> {
    let parsed = parse(url)?;
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "cannot set method".to_string())?;
    request
        .set_scheme(Some(&parsed.scheme))
        .map_err(|()| "cannot set scheme".to_string())?;
    request
        .set_authority(Some(parsed.authority))
        .map_err(|()| format!("invalid authority `{}`", parsed.authority))?;
    request
        .set_path_with_query(Some(parsed.path))
        .map_err(|()| format!("invalid path `{}`", parsed.path))?;
    let pending = outgoing_handler::handle(request, None)
        .map_err(|e| format!("request to {} refused: {e:?}", parsed.authority))?;
    let response = loop {
        match pending.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(e))) => {
                return Err(format!("request to {} failed: {e:?}", parsed.authority))
            }
            Some(Err(())) => return Err("response already taken".to_string()),
            None => pending.subscribe().block(),
        }
    };
    let status = response.status();
    let body = read_body(&response)?;
    Ok(json!({ "url": url, "status": status, "body": body }))
}

fn read_body(response: &IncomingResponse) -> Result<String, String> {
    let body = response
        .consume()
        .map_err(|()| "response body already taken".to_string())?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| "body stream already taken".to_string())?;
        while bytes.len() < MAX_BODY {
            match stream.blocking_read((MAX_BODY - bytes.len()) as u64) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("reading the body failed: {}", e.to_debug_string()))
                }
            }
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
