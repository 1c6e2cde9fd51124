//! Agents authenticated by a real OpenID provider (oidc-provider, started
//! by the test from tests/idp): `vigil serve` as an OAuth 2.1 resource
//! server. A valid JWT access token calls within its scopes; expired,
//! wrong-audience, wrong-issuer, tampered, unknown-client and out-of-scope
//! tokens are refused, each with a recorded entry; the issuer's key
//! rotation is followed (new key picked up, dropped key refused); the
//! RFC 9728 metadata and the 401 challenge point clients at the issuers.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcp_support::raw::{self, RawClient};
use mcp_support::{runtime, Node, Served};
use serde_json::{json, Value};

/// A running test identity provider; killed on drop.
struct Provider {
    child: Child,
    issuer: String,
    _config: tempfile::NamedTempFile,
}

impl Provider {
    fn start(port: u16, config: &Value) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let idp = root.join("tests/idp");
        if !idp.join("node_modules/oidc-provider").exists() {
            let status = Command::new("bash")
                .arg(root.join("scripts/deps.sh"))
                .status()
                .expect("run scripts/deps.sh");
            assert!(status.success(), "scripts/deps.sh failed");
        }
        let file = tempfile::NamedTempFile::new().expect("config file");
        std::fs::write(file.path(), config.to_string()).expect("write config");
        let mut child = Command::new("node")
            .arg(idp.join("provider.mjs"))
            .args(["--port", &port.to_string(), "--config"])
            .arg(file.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the identity provider (node)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("READY line");
        let issuer = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
            .trim()
            .to_string();
        Self {
            child,
            issuer,
            _config: file,
        }
    }

    /// A client-credentials access token for `resource` with `scope`.
    fn token(&self, client: &str, resource: &str, scope: &str) -> String {
        let reply = post_form(
            &format!("{}/token", self.issuer),
            Some((client, &format!("{client}-secret"))),
            &[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ],
        );
        reply["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token from the provider: {reply}"))
            .to_string()
    }

    /// `POST /test/rotate-keys`: a new signing key; the old one dropped.
    fn rotate(&self) -> String {
        let reply = post_form(&format!("{}/test/rotate-keys", self.issuer), None, &[]);
        reply["kid"].as_str().expect("new kid").to_string()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post_form(url: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Value {
    runtime().block_on(async {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.expect("POST to the provider");
        response.json::<Value>().await.expect("JSON reply")
    })
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A port free now (for a provider whose issuer URL vigil.toml must name
/// before it starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().expect("JWT header");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64 header");
    let header: Value = serde_json::from_slice(&header).expect("header JSON");
    header["kid"].as_str().expect("kid").to_string()
}

/// Initializes a session with `token` and calls `tool`: the HTTP status of
/// the first request, the call's JSON-RPC reply when it got that far, and
/// the challenge of a refusal.
fn try_call(url: &str, token: &str, tool: &str) -> (u16, Option<Value>, Option<String>) {
    let a = raw::attempt(url, token, tool, &json!({"text": "hello"}));
    (a.status, a.reply, a.challenge)
}

fn refused_entries(node: &Node) -> Vec<Value> {
    node.entries()
        .into_iter()
        .filter(|e| e["kind"] == "agent.token-refused")
        .collect()
}

/// Asserts the newest `agent.token-refused` entry has `code`, and that one
/// more than `before` exist.
fn assert_refusal_recorded(node: &Node, before: usize, code: &str) -> usize {
    let refused = refused_entries(node);
    assert_eq!(
        refused.len(),
        before + 1,
        "one more refusal entry: {refused:#?}"
    );
    let last = refused.last().expect("an entry");
    assert_eq!(last["details"]["code"], code, "{last}");
    assert_eq!(last["decision"], "deny");
    assert!(
        last["details"]["token_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "the entry names the token by its hash: {last}"
    );
    refused.len()
}

#[test]
fn identity_provider_tokens_are_checked_scoped_refused_recorded_and_rotated() {
    let trusted_port = free_port();
    let short_port = free_port();
    let trusted_issuer = format!("http://127.0.0.1:{trusted_port}");
    let short_issuer = format!("http://127.0.0.1:{short_port}");
    let node = Node::new(&format!(
        "[auth]\nleeway_seconds = 1\n\n\
         [[auth.issuers]]\nissuer = \"{trusted_issuer}\"\njwks_cache_seconds = 2\njwks_min_refetch_seconds = 1\n\n\
         [[auth.issuers]]\nissuer = \"{short_issuer}\"\n"
    ));
    let served = Served::start(&node);
    let resource = served.url.clone();
    let other_resource = "http://127.0.0.1:9/elsewhere/mcp";
    let clients = json!([
        {"client_id": "alice", "client_secret": "alice-secret", "scope": "tools:echo tools:echo_typed tools:*"},
        {"client_id": "mallory", "client_secret": "mallory-secret", "scope": "tools:echo"},
    ]);
    let trusted = Provider::start(
        trusted_port,
        &json!({"clients": clients, "resources": [
            {"resource": resource, "scope": "tools:echo tools:echo_typed tools:*", "ttl_seconds": 300},
            {"resource": other_resource, "scope": "tools:echo", "ttl_seconds": 300},
        ]}),
    );
    assert_eq!(trusted.issuer, trusted_issuer);
    let short = Provider::start(
        short_port,
        &json!({"alg": "RS256", "clients": clients, "resources": [
            {"resource": resource, "scope": "tools:echo", "ttl_seconds": 2},
        ]}),
    );
    // Not in [[auth.issuers]].
    let untrusted = Provider::start(
        0,
        &json!({"clients": clients, "resources": [
            {"resource": resource, "scope": "tools:echo", "ttl_seconds": 300},
        ]}),
    );

    // RFC 9728: the metadata names the resource and its issuers.
    let metadata_url = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        resource.trim_end_matches("/mcp")
    );
    let metadata: Value = runtime().block_on(async {
        reqwest::get(&metadata_url)
            .await
            .expect("GET metadata")
            .json()
            .await
            .expect("metadata JSON")
    });
    assert_eq!(metadata["resource"], resource.as_str());
    assert_eq!(
        metadata["authorization_servers"],
        json!([trusted_issuer, short_issuer])
    );
    assert!(metadata["scopes_supported"]
        .as_array()
        .is_some_and(|s| s.contains(&json!("tools:echo"))));
    // And a request without a token is pointed there.
    let (status, _, challenge) = try_call(&resource, "", "echo");
    assert_eq!(status, 401);
    let challenge = challenge.expect("WWW-Authenticate");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );

    // A valid token within its scope calls; its agent is recorded.
    let echo_only = trusted.token("alice", &resource, "tools:echo");
    let (status, reply, _) = try_call(&resource, &echo_only, "echo");
    assert_eq!(status, 200);
    let reply = reply.expect("reply");
    assert_eq!(reply["result"]["isError"], json!(false), "{reply}");
    let calls: Vec<Value> = node
        .entries()
        .into_iter()
        .filter(|e| e["kind"] == "tool.call")
        .collect();
    assert_eq!(calls.last().expect("a call")["actor"], "agent:alice");

    // Out of scope: the token covers echo only.
    let (status, reply, _) = try_call(&resource, &echo_only, "echo_typed");
    assert_eq!(status, 200);
    let text = RawClient::text_of(&reply.expect("reply"));
    assert!(text.contains("out-of-scope"), "{text}");
    let denied = node
        .entries()
        .into_iter()
        .rfind(|e| e["kind"] == "tool.denied")
        .expect("a tool.denied entry");
    assert_eq!(denied["details"]["code"], "out-of-scope", "{denied}");

    let mut refusals = refused_entries(&node).len();
    // Wrong audience: a token for another resource.
    let elsewhere = trusted.token("alice", other_resource, "tools:echo");
    assert_eq!(try_call(&resource, &elsewhere, "echo").0, 401);
    refusals = assert_refusal_recorded(&node, refusals, "wrong-audience");
    // Wrong issuer.
    let foreign = untrusted.token("alice", &resource, "tools:echo");
    assert_eq!(try_call(&resource, &foreign, "echo").0, 401);
    refusals = assert_refusal_recorded(&node, refusals, "wrong-issuer");
    // Tampered: the claims widened to every tool, the signature kept.
    let tampered = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = echo_only.split('.').collect();
        let mut claims: Value =
            serde_json::from_slice(&engine.decode(parts[1]).expect("claims")).expect("JSON");
        claims["scope"] = json!("tools:*");
        format!(
            "{}.{}.{}",
            parts[0],
            engine.encode(claims.to_string()),
            parts[2]
        )
    };
    assert_eq!(try_call(&resource, &tampered, "echo").0, 401);
    refusals = assert_refusal_recorded(&node, refusals, "bad-signature");
    // A client that is no agent of this node.
    let stranger = trusted.token("mallory", &resource, "tools:echo");
    assert_eq!(try_call(&resource, &stranger, "echo").0, 401);
    refusals = assert_refusal_recorded(&node, refusals, "unknown-agent");
    // Expired: a 2 s token, used after 4 s (1 s leeway).
    let brief = short.token("alice", &resource, "tools:echo");
    assert_eq!(
        try_call(&resource, &brief, "echo").0,
        200,
        "fresh: accepted"
    );
    std::thread::sleep(Duration::from_secs(4));
    let (status, _, challenge) = try_call(&resource, &brief, "echo");
    assert_eq!(status, 401);
    assert!(
        challenge.is_some_and(|c| c.contains("error=\"invalid_token\"")),
        "RFC 6750 error in the challenge"
    );
    refusals = assert_refusal_recorded(&node, refusals, "token-expired");

    // Key rotation: a token signed by the new key is accepted (an unknown
    // key id makes the node fetch the JWKS again) ...
    let old_kid = kid(&echo_only);
    let new_kid = trusted.rotate();
    assert_ne!(old_kid, new_kid);
    std::thread::sleep(Duration::from_millis(1_200));
    let rotated = trusted.token("alice", &resource, "tools:echo");
    assert_eq!(kid(&rotated), new_kid);
    assert_eq!(try_call(&resource, &rotated, "echo").0, 200);
    // ... and once the cached keys are stale, the dropped key no longer is.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(try_call(&resource, &echo_only, "echo").0, 401);
    refusals = assert_refusal_recorded(&node, refusals, "bad-signature");
    assert_eq!(try_call(&resource, &rotated, "echo").0, 200);

    // Algorithm attacks: `none`, and HS256 keyed with the issuer's public
    // key (the classic key confusion) are refused and recorded.
    let claims = {
        use base64::Engine as _;
        let payload = rotated.split('.').nth(1).expect("claims");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("claims");
        serde_json::from_slice::<Value>(&bytes).expect("claims JSON")
    };
    let unsigned = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            engine.encode(json!({"alg": "none", "typ": "at+jwt"}).to_string()),
            engine.encode(claims.to_string())
        )
    };
    assert_eq!(try_call(&resource, &unsigned, "echo").0, 401);
    refusals = assert_refusal_recorded(&node, refusals, "token-malformed");
    let jwks = runtime().block_on(async {
        reqwest::get(format!("{trusted_issuer}/jwks"))
            .await
            .expect("GET jwks")
            .text()
            .await
            .expect("jwks")
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(new_kid.clone());
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()).expect("HMAC key"),
    )
    .expect("HS256 token");
    assert_eq!(try_call(&resource, &confused, "echo").0, 401);
    refusals = assert_refusal_recorded(&node, refusals, "bad-signature");

    // A flood of bad tokens is refused in full but recorded within the
    // budget (20 a second); the next recorded refusal counts the rest.
    let flood = 120;
    for i in 0..flood {
        let (status, _, _) = try_call(&resource, &format!("garbage-{i}"), "echo");
        assert_eq!(status, 401);
    }
    let after_flood = refused_entries(&node).len();
    assert!(
        after_flood - refusals < flood,
        "at most the budget is recorded: {} of {flood}",
        after_flood - refusals
    );
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(try_call(&resource, "garbage-last", "echo").0, 401);
    // Every refusal is either an entry or counted in a later entry.
    let since: Vec<Value> = refused_entries(&node).split_off(refusals);
    let counted: u64 = since
        .iter()
        .map(|e| 1 + e["details"]["suppressed_before"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted, flood as u64 + 1, "nothing lost from the count");

    served.stop();
    // Everything recorded verifies.
    node.vigil().args(["audit", "verify"]).output().map_or_else(
        |e| panic!("audit verify: {e}"),
        |out| {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            )
        },
    );
}
