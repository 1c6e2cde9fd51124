//! The auditor's report: one self-contained HTML file (inline CSS and SVG,
//! no scripts, no network fetches) built only from a bundle that verified.
//! [`Evidence`] is fed every entry as the verifier reads it and keeps
//! counts and short lists, not the entries; [`Evidence::render`] writes the
//! page once the verdict is valid. Every string from an entry is escaped:
//! entries are written by agents and tools, and must not script the
//! auditor's browser. The layout is described in docs/report.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::entry::Entry;
use crate::verify::Report;

/// Most rows kept for each list (approvals, erasures, packages, ...).
pub const MAX_ROWS: usize = 200;
/// Example entry indices kept per control.
const MAX_EXAMPLES: usize = 8;
/// Bars in the calls-over-time chart, at most.
const MAX_BARS: u64 = 48;

/// One row of a list section: entry index, time, and cells.
#[derive(Debug, Clone)]
struct Row {
    index: u64,
    timestamp_ns: u64,
    cells: Vec<String>,
}

/// A list that keeps its first [`MAX_ROWS`] rows and counts the rest.
#[derive(Debug, Clone, Default)]
struct Rows {
    rows: Vec<Row>,
    more: u64,
}

impl Rows {
    fn push(&mut self, e: &Entry, cells: Vec<String>) {
        if self.rows.len() < MAX_ROWS {
            self.rows.push(Row {
                index: e.index,
                timestamp_ns: e.timestamp_ns,
                cells,
            });
        } else {
            self.more += 1;
        }
    }
}

/// Entries evidencing one control, with a few example indices.
#[derive(Debug, Clone, Default)]
struct Control {
    count: u64,
    examples: Vec<u64>,
}

/// What the report shows, gathered entry by entry. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    kinds: BTreeMap<String, u64>,
    calls: BTreeMap<(String, String), (u64, u64)>,
    /// Calls (allowed and refused) per minute since the epoch.
    per_minute: BTreeMap<u64, (u64, u64)>,
    refusals: BTreeMap<String, u64>,
    redactions: BTreeMap<String, u64>,
    denials: BTreeMap<String, u64>,
    approvals: Rows,
    erasures: Rows,
    packages: Rows,
    trust: Rows,
    keys: Rows,
    witness: Rows,
    external: Rows,
    links: BTreeMap<(String, String), u64>,
    controls: BTreeMap<&'static str, Control>,
    first_ns: Option<u64>,
    last_ns: u64,
}

/// The controls the report maps evidence to: id, title, what evidences it.
const CONTROLS: &[(&str, &str, &str)] = &[
    ("SOC 2 CC6.1", "Logical access: only authorised agents and tools", "every refused call, trust change, link refusal and approval decision"),
    ("SOC 2 CC7.2", "Monitoring for anomalies and attacks", "refused calls, sandbox capability denials, refused links and packages, refused witness submissions"),
    ("ISO 27001 A.8.15", "Logging", "every entry: a hash-chained, signed, verified log"),
    ("ISO 27001 A.8.16", "Monitoring activities", "refusals and capability denials, recorded as they happened"),
    ("GDPR Art. 30", "Records of processing", "tool calls with what they processed (payload commitments) and the PII redacted"),
    ("GDPR Art. 17", "Right to erasure", "erasure entries: payloads destroyed, the record of the erasure kept"),
    ("HIPAA 164.312(b)", "Audit controls", "every entry, verified offline against the pinned node key"),
    ("EU AI Act Art. 12", "Record-keeping of AI system use", "every agent tool call and refusal, with its time"),
    ("EU AI Act Art. 14", "Human oversight", "approval decisions by named operators (signed where required)"),
];

fn details(e: &Entry) -> Value {
    serde_json::from_str(&e.details).unwrap_or(Value::Null)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Evidence {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    fn evidence(&mut self, control: &'static str, index: u64) {
        let c = self.controls.entry(control).or_default();
        c.count += 1;
        if c.examples.len() < MAX_EXAMPLES {
            c.examples.push(index);
        }
    }

    /// Takes one verified entry into account.
    pub fn observe(&mut self, e: &Entry) {
        *self.kinds.entry(e.kind.clone()).or_default() += 1;
        self.first_ns.get_or_insert(e.timestamp_ns);
        self.last_ns = self.last_ns.max(e.timestamp_ns);
        self.evidence("ISO 27001 A.8.15", e.index);
        self.evidence("HIPAA 164.312(b)", e.index);
        let d = details(e);
        let agent = e
            .actor
            .strip_prefix("agent:")
            .unwrap_or(&e.actor)
            .to_string();
        let tool = e
            .subject
            .strip_prefix("tool:")
            .unwrap_or(&e.subject)
            .to_string();
        match e.kind.as_str() {
            "tool.call" | "tool.denied" => {
                let refused = e.kind == "tool.denied"
                    || d.get("status")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s != "ok");
                let counts = self.calls.entry((agent, tool.clone())).or_default();
                let minute = self
                    .per_minute
                    .entry(e.timestamp_ns / 60_000_000_000)
                    .or_default();
                if refused {
                    counts.1 += 1;
                    minute.1 += 1;
                    let code = d
                        .get("code")
                        .or_else(|| d.get("status"))
                        .map(text)
                        .unwrap_or_else(|| "refused".into());
                    *self.refusals.entry(code).or_default() += 1;
                    self.evidence("SOC 2 CC6.1", e.index);
                    self.evidence("SOC 2 CC7.2", e.index);
                    self.evidence("ISO 27001 A.8.16", e.index);
                } else {
                    counts.0 += 1;
                    minute.0 += 1;
                }
                self.evidence("EU AI Act Art. 12", e.index);
                if e.kind == "tool.call" {
                    self.evidence("GDPR Art. 30", e.index);
                }
                if let Some(Value::Object(r)) = d.get("redactions") {
                    for (kind, n) in r {
                        *self.redactions.entry(kind.clone()).or_default() +=
                            n.as_u64().unwrap_or(0);
                    }
                }
                if let Some(Value::Array(denied)) = d.pointer("/capabilities/denied") {
                    if !denied.is_empty() {
                        *self.denials.entry(tool).or_default() += denied.len() as u64;
                        self.evidence("SOC 2 CC7.2", e.index);
                        self.evidence("ISO 27001 A.8.16", e.index);
                    }
                }
            }
            "approval.decided" | "approval.refused" => {
                let signed = d.get("signature").is_some();
                self.approvals.push(
                    e,
                    vec![
                        e.actor.clone(),
                        tool,
                        if e.kind == "approval.refused" {
                            format!(
                                "refused: {}",
                                text(d.get("refusal").unwrap_or(&Value::Null))
                            )
                        } else {
                            e.decision.clone()
                        },
                        if signed {
                            "signature verified".into()
                        } else {
                            "unsigned".into()
                        },
                        text(d.get("reason").unwrap_or(&Value::Null)),
                    ],
                );
                self.evidence("EU AI Act Art. 14", e.index);
                self.evidence("SOC 2 CC6.1", e.index);
            }
            "payload.erased" => {
                self.erasures.push(
                    e,
                    vec![
                        e.subject.clone(),
                        e.actor.clone(),
                        text(d.get("reason").unwrap_or(&Value::Null)),
                    ],
                );
                self.evidence("GDPR Art. 17", e.index);
            }
            "package.admitted" | "package.refused" | "package.removed" => {
                let why = d
                    .get("reason")
                    .or_else(|| d.get("code"))
                    .map(text)
                    .unwrap_or_default();
                self.packages.push(
                    e,
                    vec![e.subject.clone(), e.kind.clone(), e.actor.clone(), why],
                );
                if e.kind == "package.refused" {
                    self.evidence("SOC 2 CC7.2", e.index);
                }
            }
            "trust.changed" | "trust.refused" => {
                self.trust.push(
                    e,
                    vec![
                        e.kind.clone(),
                        text(d.get("change").unwrap_or(&Value::Null)),
                        e.subject.clone(),
                        e.actor.clone(),
                    ],
                );
                self.evidence("SOC 2 CC6.1", e.index);
            }
            "key.rotated" => {
                self.keys.push(e, vec![e.subject.clone(), e.actor.clone()]);
            }
            "witness.cosigned" | "witness.refused" => {
                self.witness.push(
                    e,
                    vec![
                        e.actor.clone(),
                        e.subject.clone(),
                        e.decision.clone(),
                        text(d.get("reason").unwrap_or(&Value::Null)),
                    ],
                );
                if e.kind == "witness.refused" {
                    self.evidence("SOC 2 CC7.2", e.index);
                }
            }
            kind if kind.starts_with("link.") || kind.starts_with("tunnel.") => {
                *self
                    .links
                    .entry((kind.to_string(), e.actor.clone()))
                    .or_default() += 1;
                if kind.ends_with(".refused") {
                    self.evidence("SOC 2 CC6.1", e.index);
                    self.evidence("SOC 2 CC7.2", e.index);
                }
            }
            _ if d.get("_external") == Some(&Value::Bool(true)) => {
                self.external.push(
                    e,
                    vec![
                        e.kind.clone(),
                        e.actor.clone(),
                        e.subject.clone(),
                        e.decision.clone(),
                    ],
                );
            }
            _ => {}
        }
    }

    /// The whole page for the verified `report`, generated at
    /// `generated` (shown as given, e.g. an RFC 3339 time).
    pub fn render(&self, report: &Report, generated: &str) -> String {
        let mut h = String::with_capacity(64 * 1024);
        let title = format!("vigil audit report: {}", report.origin);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
            esc(&title),
            esc(&title)
        );
        self.summary(&mut h, report, generated);
        self.chart(&mut h);
        self.call_table(&mut h);
        count_table(
            &mut h,
            "refusals",
            "Refusals by code",
            "code",
            &self.refusals,
        );
        count_table(
            &mut h,
            "redactions",
            "Redactions by type",
            "PII type",
            &self.redactions,
        );
        count_table(
            &mut h,
            "denials",
            "Capability denials by tool",
            "tool",
            &self.denials,
        );
        rows_table(
            &mut h,
            "approvals",
            "Approvals and who decided",
            &["operator", "tool", "decision", "signature", "reason"],
            &self.approvals,
        );
        rows_table(
            &mut h,
            "erasures",
            "Erasures",
            &["erased", "by", "reason"],
            &self.erasures,
        );
        rows_table(
            &mut h,
            "packages",
            "Packages admitted, refused and removed",
            &["package", "event", "by", "reason"],
            &self.packages,
        );
        rows_table(
            &mut h,
            "trust",
            "Trust changes",
            &["event", "change", "subject", "by"],
            &self.trust,
        );
        self.links_table(&mut h);
        rows_table(
            &mut h,
            "keys",
            "Node key handovers",
            &["new key", "by"],
            &self.keys,
        );
        rows_table(
            &mut h,
            "witnessing",
            "Checkpoints this node witnessed",
            &["log", "checkpoint", "decision", "reason"],
            &self.witness,
        );
        rows_table(
            &mut h,
            "external",
            "Events reported by other systems",
            &["kind", "actor", "subject", "decision"],
            &self.external,
        );
        self.controls_table(&mut h);
        h.push_str("</body></html>\n");
        h
    }

    fn summary(&self, h: &mut String, r: &Report, generated: &str) {
        let _ = write!(
            h,
            "<section id=\"verification\"><h2>Verification</h2><p class=\"valid\">VALID: every entry below was checked against the pinned node key before this report was written.</p><table>"
        );
        let witnesses = if r.cosigners.is_empty() {
            "none required".to_string()
        } else {
            r.cosigners.join(", ")
        };
        let period = match self.first_ns {
            Some(first) => format!("{} to {}", time(first), time(self.last_ns)),
            None => "no entries".into(),
        };
        for (k, v) in [
            ("log", r.origin.clone()),
            (
                "entries",
                format!("{} (indices {}..{})", r.entries, r.from, r.to),
            ),
            ("period", period),
            ("signed checkpoints", r.checkpoints.to_string()),
            ("node keys in the chain", r.keys.to_string()),
            ("witness cosignatures on the newest checkpoint", witnesses),
            ("held checkpoints proven extended", r.held.to_string()),
            (
                "payloads checked / absent",
                format!("{} / {}", r.payloads_checked, r.payloads_absent),
            ),
            ("erasures", r.erasures.to_string()),
            ("signed approvals verified", r.signed_approvals.to_string()),
            ("report generated", generated.to_string()),
        ] {
            let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
        }
        h.push_str("</table><h3>Entries by kind</h3><table><tr><th>kind</th><th>entries</th></tr>");
        for (kind, n) in &self.kinds {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(kind));
        }
        h.push_str("</table></section>\n");
    }

    fn chart(&self, h: &mut String) {
        h.push_str("<section id=\"activity\"><h2>Calls over time</h2>");
        let (Some((&first, _)), Some((&last, _))) = (
            self.per_minute.first_key_value(),
            self.per_minute.last_key_value(),
        ) else {
            h.push_str("<p>No tool calls in this bundle.</p></section>\n");
            return;
        };
        let span = last - first + 1;
        let width_min = span.div_ceil(MAX_BARS).max(1);
        let bars = span.div_ceil(width_min);
        let mut buckets = vec![(0u64, 0u64); bars as usize];
        for (&m, &(ok, refused)) in &self.per_minute {
            let b = &mut buckets[((m - first) / width_min) as usize];
            b.0 += ok;
            b.1 += refused;
        }
        let max = buckets.iter().map(|(a, b)| a + b).max().unwrap_or(1).max(1);
        let (w, ht, pad) = (720u64, 200u64, 30u64);
        let bar_w = ((w - 2 * pad) / bars.max(1)).min(40);
        let _ = write!(
            h,
            "<svg id=\"calls-chart\" role=\"img\" aria-label=\"calls per {width_min} minute(s)\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" xmlns=\"http://www.w3.org/2000/svg\">",
            ht + 2 * pad,
            ht + 2 * pad
        );
        let _ = write!(
            h,
            "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/><text x=\"{pad}\" y=\"{}\" font-size=\"11\">{max}</text>",
            ht + pad,
            w - pad,
            ht + pad,
            pad - 8
        );
        for (i, (ok, refused)) in buckets.iter().enumerate() {
            let x = pad + i as u64 * bar_w;
            let ok_h = ok * ht / max;
            let ref_h = refused * ht / max;
            let minute = first + i as u64 * width_min;
            let label = esc(&format!(
                "{}: {ok} allowed, {refused} refused",
                time(minute * 60_000_000_000)
            ));
            if *ok > 0 {
                let _ = write!(
                    h,
                    "<rect class=\"bar ok\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{label}</title></rect>",
                    ht + pad - ok_h,
                    bar_w.saturating_sub(2).max(1),
                    ok_h.max(1)
                );
            }
            if *refused > 0 {
                let _ = write!(
                    h,
                    "<rect class=\"bar refused\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{label}</title></rect>",
                    ht + pad - ok_h - ref_h.max(1),
                    bar_w.saturating_sub(2).max(1),
                    ref_h.max(1)
                );
            }
        }
        let _ = write!(
            h,
            "<text x=\"{pad}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
            ht + pad + 16,
            esc(&time(first * 60_000_000_000)),
            w - pad,
            ht + pad + 16,
            esc(&time(last * 60_000_000_000))
        );
        h.push_str("<p class=\"legend\"><span class=\"ok\">&#9632;</span> allowed <span class=\"refused\">&#9632;</span> refused</p></section>\n");
    }

    fn call_table(&self, h: &mut String) {
        h.push_str("<section id=\"calls\"><h2>Calls per agent and tool</h2><table><tr><th>agent</th><th>tool</th><th>allowed</th><th>refused</th></tr>");
        for ((agent, tool), (ok, refused)) in &self.calls {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{ok}</td><td>{refused}</td></tr>",
                esc(agent),
                esc(tool)
            );
        }
        if self.calls.is_empty() {
            h.push_str("<tr><td colspan=\"4\">none</td></tr>");
        }
        h.push_str("</table></section>\n");
    }

    fn links_table(&self, h: &mut String) {
        h.push_str("<section id=\"links\"><h2>Links and tunnels</h2><table><tr><th>event</th><th>peer</th><th>entries</th></tr>");
        for ((kind, peer), n) in &self.links {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
                esc(kind),
                esc(peer)
            );
        }
        if self.links.is_empty() {
            h.push_str("<tr><td colspan=\"3\">none</td></tr>");
        }
        h.push_str("</table></section>\n");
    }

    fn controls_table(&self, h: &mut String) {
        h.push_str("<section id=\"controls\"><h2>Evidence by control</h2><table><tr><th>control</th><th>what it asks</th><th>evidence in this bundle</th><th>entries</th><th>for example</th></tr>");
        for (id, title, what) in CONTROLS {
            let c = self.controls.get(id).cloned().unwrap_or_default();
            let examples: Vec<String> = c.examples.iter().map(|i| format!("#{i}")).collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(id),
                esc(title),
                esc(what),
                c.count,
                esc(&examples.join(" "))
            );
        }
        h.push_str("</table></section>\n");
    }
}

fn count_table(h: &mut String, id: &str, title: &str, key: &str, counts: &BTreeMap<String, u64>) {
    let _ = write!(
        h,
        "<section id=\"{id}\"><h2>{}</h2><table><tr><th>{}</th><th>count</th></tr>",
        esc(title),
        esc(key)
    );
    for (k, n) in counts {
        let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(k));
    }
    if counts.is_empty() {
        h.push_str("<tr><td colspan=\"2\">none</td></tr>");
    }
    h.push_str("</table></section>\n");
}

fn rows_table(h: &mut String, id: &str, title: &str, columns: &[&str], rows: &Rows) {
    let _ = write!(
        h,
        "<section id=\"{id}\"><h2>{}</h2><table><tr><th>entry</th><th>time</th>",
        esc(title)
    );
    for c in columns {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for r in &rows.rows {
        let _ = write!(
            h,
            "<tr><td>#{}</td><td>{}</td>",
            r.index,
            esc(&time(r.timestamp_ns))
        );
        for c in &r.cells {
            let _ = write!(h, "<td>{}</td>", esc(c));
        }
        h.push_str("</tr>");
    }
    if rows.rows.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"{}\">none</td></tr>",
            columns.len() + 2
        );
    }
    if rows.more > 0 {
        let _ = write!(
            h,
            "<tr><td colspan=\"{}\">and {} more</td></tr>",
            columns.len() + 2,
            rows.more
        );
    }
    h.push_str("</table></section>\n");
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A timestamp in nanoseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(ns: u64) -> String {
    let (date, clock) = date_and_clock(ns);
    format!("{date} {clock} UTC")
}

/// A timestamp in nanoseconds as RFC 3339 UTC with nanoseconds
/// (`YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ`).
pub fn rfc3339(ns: u64) -> String {
    let (date, clock) = date_and_clock(ns);
    format!("{date}T{clock}.{:09}Z", ns % 1_000_000_000)
}

/// `YYYY-MM-DD` and `HH:MM:SS` (UTC) of a timestamp in nanoseconds.
fn date_and_clock(ns: u64) -> (String, String) {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;font-size:.9em}th{background:#f4f4f4}.valid{color:#1a7f37;font-weight:bold}.bar.ok{fill:#2f6fb0}.bar.refused{fill:#c43c3c}.legend .ok{color:#2f6fb0}.legend .refused{color:#c43c3c}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_escaping() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            time(1_733_443_200 * 1_000_000_000),
            "2024-12-06 00:00:00 UTC"
        );
        assert_eq!(time(951_782_400 * 1_000_000_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            esc("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;"
        );
    }
}
