//! The rmcp server handler: `tools/list` shows the tools the caller's agent
//! may call with their schemas, `tools/call` hands the call to the
//! [`Pipeline`] and turns its reply into an MCP tool result (refusals are
//! tool errors whose text says what was refused and why). The agent comes
//! from the transport: fixed for stdio, from the bearer token over HTTP.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequest,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema, Implementation,
    InputRequest, InputRequests, InputRequiredResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{ElicitationMode, NotificationContext, RequestContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::Value;

use crate::mcp::pipeline::{Approver, Asked, CallReply, Pipeline};
use crate::policy::grant::{Grant, ToolScope};
use crate::policy::{Answer, Decision};

/// The key of the approval form in an `input_required` result.
const APPROVAL_INPUT: &str = "approval";

/// How the handler learns the calling agent.
#[derive(Debug, Clone)]
pub enum AgentSource {
    /// One agent for the whole connection (stdio).
    Fixed(String),
    /// The agent resolved from the bearer token by the HTTP layer and
    /// stored in the request's extensions as [`HttpAgent`].
    Http,
}

/// The agent of an HTTP request and what its token allows, put in the
/// request extensions by the bearer-token check of [`crate::mcp::http`].
#[derive(Debug, Clone)]
pub struct HttpAgent(pub Grant);

/// The MCP handler of a node.
#[derive(Debug, Clone)]
pub struct VigilServer {
    pipeline: Arc<Pipeline>,
    source: AgentSource,
}

impl VigilServer {
    pub fn new(pipeline: Arc<Pipeline>, source: AgentSource) -> Self {
        Self { pipeline, source }
    }

    /// The calling agent and the tools its token covers.
    fn agent(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<(String, ToolScope), ErrorData> {
        match &self.source {
            AgentSource::Fixed(name) => Ok((name.clone(), ToolScope::All)),
            AgentSource::Http => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.extensions.get::<HttpAgent>())
                .map(|a| (a.0.agent.clone(), a.0.tools.clone()))
                .ok_or_else(|| {
                    ErrorData::invalid_request(
                        "no agent identified for this request (bearer token missing)",
                        None,
                    )
                }),
        }
    }
}

/// The MCP form of a pipeline reply.
pub fn tool_result(reply: CallReply) -> CallToolResult {
    match reply.result {
        Ok(value) => {
            let text = value.to_string();
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            if reply.structured {
                result.structured_content = Some(value);
            }
            result
        }
        Err(refusal) => CallToolResult::error(vec![ContentBlock::text(format!(
            "refused ({}): {refusal}",
            refusal.code()
        ))]),
    }
}

/// Asks the human at the agent's client through MCP elicitation. Only a
/// human's answer decides here; whenever the request cannot actually be
/// made or does not come back with an answer, the call goes to the approval
/// queue instead ([`Asked::Unavailable`]).
struct Elicitation {
    peer: Peer<RoleServer>,
    /// The protocol version of the call's request (or session).
    protocol: Option<ProtocolVersion>,
    timeout: Duration,
}

impl Elicitation {
    /// Why elicitation cannot be used for this call, if it cannot.
    fn unavailable(&self) -> Option<String> {
        // From 2026-07-28 on the protocol forbids server-to-client requests
        // (rmcp refuses to send them), whatever the client declared.
        if let Some(v) = &self.protocol {
            if v.as_str() >= ProtocolVersion::V_2026_07_28.as_str() {
                return Some(format!(
                    "the client speaks MCP {v}, which has no server-initiated elicitation"
                ));
            }
        }
        if !self
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form)
        {
            return Some("the client did not declare form elicitation".into());
        }
        None
    }
}

/// The form that asks a human to approve one call.
fn approval_form(agent: &str, tool: &str, arguments: &Value) -> ElicitRequestParams {
    let schema = ElicitationSchema::builder()
        .required_bool("approve")
        .optional_string("reason")
        .build_unchecked();
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!(
            "vigil: agent `{agent}` wants to call `{tool}` (sensitivity high) with arguments {arguments}. Approve this call?"
        ),
        requested_schema: schema,
    }
}

/// The decision already made in-band (MCP 2026-07-28), handed to the
/// pipeline as the human's answer.
struct Answered(Decision);

impl Approver for Answered {
    async fn ask(&self, _: &str, _: &str, _: &Value) -> Asked {
        Asked::Answered(self.0.clone())
    }
}

impl Approver for Elicitation {
    async fn ask(&self, agent: &str, tool: &str, arguments: &Value) -> Asked {
        if let Some(why) = self.unavailable() {
            return Asked::Unavailable(why);
        }
        let params = approval_form(agent, tool, arguments);
        let asked = self
            .peer
            .create_elicitation_with_timeout(params, Some(self.timeout))
            .await;
        match asked {
            Err(e) => Asked::Unavailable(format!("elicitation failed: {e}")),
            Ok(result) => Asked::Answered(decision(agent, result)),
        }
    }
}

/// The human's answer to an elicitation: approved only when accepted with
/// `approve: true`; declining or dismissing the form denies the call.
fn decision(agent: &str, result: ElicitResult) -> Decision {
    let content = result.content.unwrap_or(Value::Null);
    let reason = content
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let approved = result.action == ElicitationAction::Accept
        && content.get("approve").and_then(Value::as_bool) == Some(true);
    let answer = if approved {
        Answer::Approve
    } else {
        Answer::Deny
    };
    let reason = if reason.is_empty() && !approved {
        format!("the user answered {:?}", result.action).to_lowercase()
    } else {
        reason
    };
    Decision {
        answer,
        by: format!("elicitation:{agent}"),
        reason,
        entry: None,
    }
}

impl ServerHandler for VigilServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
            .with_server_info(Implementation::new("vigil", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "vigil runs signed tools in a sandbox; every call is checked, may need a human's approval, \
                 has personal data redacted from its output and is recorded in an audit ledger.",
            )
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Told when tools are installed or withdrawn while the node runs.
        self.pipeline.add_client(context.peer);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (agent, scope) = self.agent(&context)?;
        let tools = self
            .pipeline
            .tools_for(&agent, &scope)
            .into_iter()
            .map(|t| {
                let input = match &t.spec.input_schema {
                    Value::Object(m) => m.clone(),
                    _ => Default::default(),
                };
                let mut tool = Tool::new(
                    t.spec.name.clone(),
                    t.spec.description.clone(),
                    Arc::new(input),
                );
                if let Some(Value::Object(out)) = &t.spec.output_schema {
                    tool = tool.with_raw_output_schema(Arc::new(out.clone()));
                }
                tool
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (agent, scope) = self.agent(&context)?;
        let protocol = context.protocol_version();
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let tool = request.name.to_string();
        let in_band = protocol
            .as_ref()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
            && scope.allows(&tool)
            && self.pipeline.asks_client(&agent, &tool);
        if in_band {
            let digest = crate::mcp::pipeline::digest(&arguments);
            let Some(state) = request.request_state else {
                // First round: ask the client's user, keep the call here.
                let state = self.pipeline.inband().ask(&agent, &tool, &digest);
                let form = ElicitRequest::new(approval_form(&agent, &tool, &arguments));
                let mut requests = InputRequests::new();
                requests.insert(APPROVAL_INPUT.into(), InputRequest::Elicitation(form));
                return Ok(InputRequiredResult::new(Some(requests), Some(state)).into());
            };
            let decision = match self.pipeline.inband().take(&state, &agent, &tool, &digest) {
                Err(stale) => Decision {
                    answer: Answer::Deny,
                    by: "node:request-state".into(),
                    reason: stale.to_string(),
                    entry: None,
                },
                Ok(()) => match request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get(APPROVAL_INPUT))
                    .map(|v| serde_json::from_value::<ElicitResult>(v.clone()))
                {
                    Some(Ok(result)) => decision(&agent, result),
                    Some(Err(e)) => Decision {
                        answer: Answer::Deny,
                        by: format!("elicitation:{agent}"),
                        reason: format!("the client's answer is not an elicitation result: {e}"),
                        entry: None,
                    },
                    None => Decision {
                        answer: Answer::Deny,
                        by: format!("elicitation:{agent}"),
                        reason: format!("the client sent no `{APPROVAL_INPUT}` answer"),
                        entry: None,
                    },
                },
            };
            let reply = self
                .pipeline
                .call_scoped(&agent, &scope, &tool, arguments, &Answered(decision))
                .await;
            return Ok(tool_result(reply).into());
        }
        let approver = Elicitation {
            peer: context.peer.clone(),
            protocol,
            timeout: self.pipeline.approval_timeout(),
        };
        let reply = self
            .pipeline
            .call_scoped(&agent, &scope, &tool, arguments, &approver)
            .await;
        Ok(tool_result(reply).into())
    }
}

/// Serves MCP over this process's stdin/stdout for `agent` until the
/// client closes the stream.
pub async fn serve_stdio(pipeline: Arc<Pipeline>, agent: String) -> Result<(), std::io::Error> {
    let server = VigilServer::new(pipeline, AgentSource::Fixed(agent));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}
