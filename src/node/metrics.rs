//! The node's metrics: one Prometheus registry that `vigil serve` exposes at
//! `GET /metrics`. This module owns the metric names, their labels and
//! their help texts. Counters and gauges that change with events are
//! updated where the event happens (tool calls in `Pipeline::call`, links
//! and tunnels in the link observer); what the node can read at any time
//! (ledger size, age of the last checkpoint, pending approvals) is read
//! when scraped, from [`NodeSources`].
//!
//! Label values come from the node's configuration (agent and tool names
//! the pipeline knows, refusal codes), never from what a caller sent, so a
//! caller cannot grow the registry: unknown agents and tools count as
//! [`UNKNOWN`].

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::node::audit::Auditor;
use crate::policy::{ApprovalQueue, Refusal};

/// The label value standing for an agent or tool the node does not know.
pub const UNKNOWN: &str = "unknown";

/// The `Content-Type` of [`Metrics::render`]'s text (Prometheus 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the call latency buckets: a warm call takes
/// about a millisecond, a call held for a human's approval minutes.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
    300.0,
];

/// Labels of `vigil_tool_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    agent: String,
    tool: String,
    /// `ok` or the refusal code (`Refusal::code`).
    code: String,
}

/// Labels of `vigil_link_refusals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    refusal: String,
}

/// Labels of `vigil_agent_anomalies_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnomalyLabels {
    agent: String,
    rule: String,
    /// `enforce` (the agent was suspended) or `dry-run`.
    mode: String,
}

/// Labels of `vigil_token_refusals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenRefusalLabels {
    code: String,
}

/// Labels of `vigil_tunnel_bytes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    /// `to_target` or `from_target`.
    direction: &'static str,
}

/// What the node reads when scraped: its ledger (through the auditor) and
/// its approval queue.
#[derive(Clone, Debug)]
pub struct NodeSources {
    pub auditor: Auditor,
    pub approvals: ApprovalQueue,
    /// The calls in the sandbox.
    pub in_flight: std::sync::Arc<crate::mcp::in_flight::InFlight>,
}

impl Collector for NodeSources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let size = self.auditor.ledger().size();
        let (signed, at) = self.auditor.last_checkpoint();
        let gauge = |encoder: &mut DescriptorEncoder, name, help, value: f64| {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        let entries = ConstGauge::new(i64::try_from(size).unwrap_or(i64::MAX));
        entries.encode(encoder.encode_descriptor(
            "ledger_entries",
            "Entries in the audit ledger.",
            None,
            entries.metric_type(),
        )?)?;
        let unsigned = ConstGauge::new(i64::try_from(size.saturating_sub(signed)).unwrap_or(0));
        unsigned.encode(encoder.encode_descriptor(
            "ledger_unsigned_entries",
            "Ledger entries not yet covered by a signed checkpoint.",
            None,
            unsigned.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "ledger_checkpoint_age_seconds",
            "Seconds since this node last signed a ledger checkpoint (since it started, if it signed none yet).",
            at.elapsed().as_secs_f64(),
        )?;
        let running = ConstGauge::new(i64::try_from(self.in_flight.len()).unwrap_or(i64::MAX));
        running.encode(encoder.encode_descriptor(
            "calls_running",
            "Tool calls in the sandbox or writing their ledger entry.",
            None,
            running.metric_type(),
        )?)?;
        // An unreadable queue is not a reason to fail the whole scrape: the
        // gauge is left out and the error is visible to `vigil approvals`.
        if let Ok(pending) = self.approvals.pending() {
            let g = ConstGauge::new(i64::try_from(pending.len()).unwrap_or(i64::MAX));
            g.encode(encoder.encode_descriptor(
                "approvals_pending",
                "Tool calls waiting for a human's approval.",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// The node's metrics. Cheap to share (`Arc<Metrics>`); every method takes
/// `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Histogram,
    links_open: Gauge,
    tunnels_open: Gauge,
    link_refusals: Family<RefusalLabels, Counter>,
    tunnel_bytes: Family<DirectionLabels, Counter>,
    anomalies: Family<AnomalyLabels, Counter>,
    token_refusals: Family<TokenRefusalLabels, Counter>,
}

impl Metrics {
    /// The registry with every metric at zero; `node` adds the gauges read
    /// at scrape time (ledger, checkpoint age, pending approvals).
    pub fn new(node: Option<NodeSources>) -> Self {
        let mut registry = Registry::with_prefix("vigil");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by agent, tool and outcome (code: ok or the refusal code)",
            calls.clone(),
        );
        let call_seconds = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "tool_call_duration_seconds",
            "Time from a tools/call reaching the pipeline to its recorded reply",
            call_seconds.clone(),
        );
        let links_open = Gauge::default();
        registry.register(
            "links_open",
            "Links from peer nodes open now (recorded link.opened, not yet link.closed)",
            links_open.clone(),
        );
        let tunnels_open = Gauge::default();
        registry.register(
            "tunnels_open",
            "Tunnels to targets open now through this node's links",
            tunnels_open.clone(),
        );
        let link_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "link_refusals",
            "Links refused, by refusal",
            link_refusals.clone(),
        );
        let tunnel_bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "tunnel_bytes",
            "Bytes carried by finished tunnels, to and from their targets",
            tunnel_bytes.clone(),
        );
        let anomalies = Family::<AnomalyLabels, Counter>::default();
        registry.register(
            "agent_anomalies",
            "Behavioural watch breaches, by agent, rule and mode (enforce: the agent was suspended)",
            anomalies.clone(),
        );
        let token_refusals = Family::<TokenRefusalLabels, Counter>::default();
        registry.register(
            "token_refusals",
            "Bearer tokens refused at the HTTP edge, by refusal code",
            token_refusals.clone(),
        );
        if let Some(node) = node {
            registry.register_collector(Box::new(node));
        }
        Self {
            registry,
            calls,
            call_seconds,
            links_open,
            tunnels_open,
            link_refusals,
            tunnel_bytes,
            anomalies,
            token_refusals,
        }
    }

    /// The behavioural watch saw `agent` breach `rule`.
    pub fn count_anomaly(&self, agent: &str, rule: &str, mode: &str) {
        self.anomalies
            .get_or_create(&AnomalyLabels {
                agent: agent.to_string(),
                rule: rule.to_string(),
                mode: mode.to_string(),
            })
            .inc();
    }

    /// A bearer token was refused with `code`.
    pub fn count_token_refusal(&self, code: &str) {
        self.token_refusals
            .get_or_create(&TokenRefusalLabels {
                code: code.to_string(),
            })
            .inc();
    }

    /// Counts one finished call. `agent` and `tool` must be names the node
    /// knows, or [`UNKNOWN`].
    pub fn count_call<T>(
        &self,
        agent: &str,
        tool: &str,
        result: &Result<T, Refusal>,
        took: Duration,
    ) {
        let code = match result {
            Ok(_) => "ok",
            Err(refusal) => refusal.code(),
        };
        self.calls
            .get_or_create(&CallLabels {
                agent: agent.to_string(),
                tool: tool.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.call_seconds.observe(took.as_secs_f64());
    }

    /// A link was opened (its `link.opened` is durable).
    pub fn link_opened(&self) {
        self.links_open.inc();
    }

    /// An open link ended.
    pub fn link_closed(&self) {
        self.links_open.dec();
    }

    /// A link was refused; `refusal` is its name (`unknown-key`, ...).
    pub fn link_refused(&self, refusal: &str) {
        self.link_refusals
            .get_or_create(&RefusalLabels {
                refusal: refusal.to_string(),
            })
            .inc();
    }

    /// A tunnel to a target was opened (its `tunnel.opened` is durable).
    pub fn tunnel_opened(&self) {
        self.tunnels_open.inc();
    }

    /// An open tunnel ended after carrying these bytes.
    pub fn tunnel_closed(&self, bytes_to_target: u64, bytes_from_target: u64) {
        self.tunnels_open.dec();
        let add = |direction, n| {
            self.tunnel_bytes
                .get_or_create(&DirectionLabels { direction })
                .inc_by(n);
        };
        add("to_target", bytes_to_target);
        add("from_target", bytes_from_target);
    }

    /// The whole registry in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_agent_tool_and_code() {
        let m = Metrics::new(None);
        m.count_call::<()>("alice", "echo", &Ok(()), Duration::from_millis(2));
        m.count_call::<()>(
            "alice",
            UNKNOWN,
            &Err(Refusal::UnknownTool {
                tool: "nope".into(),
            }),
            Duration::from_millis(1),
        );
        m.link_opened();
        m.tunnel_opened();
        m.tunnel_closed(10, 20);
        let text = m.render().unwrap();
        assert!(
            text.contains(r#"vigil_tool_calls_total{agent="alice",tool="echo",code="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"vigil_tool_calls_total{agent="alice",tool="unknown",code="unknown-tool"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("vigil_tool_call_duration_seconds_count 2"),
            "{text}"
        );
        assert!(text.contains("vigil_links_open 1"), "{text}");
        assert!(text.contains("vigil_tunnels_open 0"), "{text}");
        assert!(
            text.contains(r#"vigil_tunnel_bytes_total{direction="from_target"} 20"#),
            "{text}"
        );
    }
}
