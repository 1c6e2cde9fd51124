//! Behavioural watch: a sans-I/O detector of agents that stop behaving like
//! themselves. It owns, per watched agent, the rules from config (calls,
//! output bytes and records per window, allowed hours in a time zone, first
//! use of a tool, refusal rate), a learned baseline (EWMA of calls and
//! output bytes per window for each of the 168 hours of the week, in the
//! agent's time zone), and the set of suspended agents.
//!
//! The pipeline feeds it every call with an explicit time
//! ([`Watch::call_started`], [`Watch::call_finished`]); nothing in here
//! reads a clock or does I/O. A breach comes back as [`Verdict::Breach`]
//! with [`Evidence`] (rule, window, observed vs limit) that serialises to
//! JSON for the ledger. The watch does not act on it: the pipeline reads
//! the agent's [`Mode`] and either suspends the agent ([`Watch::suspend`],
//! an `agent.suspended` entry) or only records an `agent.anomaly`.
//!
//! Windows slide: counts cover the last `window_secs`, kept in tenths, so a
//! window judged at `now` starts between 0.9 and 1.0 windows before `now`.
//! A rule that breached is not reported again for one window (a first use
//! is reported once per tool), so a dry-run agent yields at most one
//! anomaly per rule per window.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Tools remembered per agent for [`Rule::FirstToolUse`]. Past this, a tool
/// not remembered is reported (at most once per window) after the learning
/// period: a full set fails closed rather than going quiet.
pub const MAX_TOOLS_SEEN: usize = 10_000;

/// Agents the default config (see [`Watch::with_default`]) tracks at most;
/// further unknown agents are not watched (their verdict is `Normal`).
pub const MAX_DEFAULT_AGENTS: usize = 10_000;

/// Tenths of a window the sliding counts are kept in.
const SLICES: usize = 10;
const HOUR_MS: i64 = 3_600_000;
const SLOTS: usize = 168;
/// 9999-12-31T23:59:59.999Z: times are clamped to 0..=this before they
/// are turned into dates.
const MAX_MS: i64 = 253_402_300_799_999;

/// What the pipeline does on a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Suspend the agent and record `agent.suspended`.
    #[default]
    Enforce,
    /// Record `agent.anomaly` only.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::DryRun => "dry-run",
        }
    }
}

/// An agent's watch (`watch` table of an agent in vigil.toml). An empty
/// table is valid: it enforces no rule but the defaults below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// `enforce` (default) or `dry-run`.
    pub mode: Mode,
    /// Length of the sliding window every per-window rule counts over,
    /// 1..=3600 (default 60).
    pub window_secs: u64,
    /// Calls started in one window at most.
    pub max_calls_per_window: Option<u64>,
    /// Output bytes of calls finished in one window at most.
    pub max_output_bytes_per_window: Option<u64>,
    /// Output records of calls finished in one window at most.
    pub max_records_per_window: Option<u64>,
    /// Local hours calls may start in: `"07-19"` (from 07:00 up to, not
    /// including, 19:00) or across midnight `"22-06"`; `"00-24"` is all day.
    pub allowed_hours: Option<AllowedHours>,
    /// IANA time zone of `allowed_hours` and of the baseline's hours of the
    /// week (default `UTC`); daylight saving time is followed.
    pub time_zone: TimeZone,
    /// Hours after the agent's first call during which the learned rules
    /// (`first-tool-use`, the baseline) only learn (default 168, a week).
    pub learning_hours: u64,
    /// Report the first call of a tool the agent had not called before,
    /// once learning is over (default false).
    pub alert_on_first_tool_use: bool,
    /// Share (0..=1) of the calls finished in one window that may be refused.
    pub max_refusal_rate: Option<f64>,
    /// Calls that must have finished in the window before the refusal rate
    /// is judged (default 20).
    pub min_calls_for_refusal_rate: u64,
    /// The learned baseline; absent: no baseline rule.
    pub baseline: Option<BaselineConfig>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            window_secs: 60,
            max_calls_per_window: None,
            max_output_bytes_per_window: None,
            max_records_per_window: None,
            allowed_hours: None,
            time_zone: TimeZone::default(),
            learning_hours: 168,
            alert_on_first_tool_use: false,
            max_refusal_rate: None,
            min_calls_for_refusal_rate: 20,
            baseline: None,
        }
    }
}

/// The learned baseline: for each hour of the week (local time), an EWMA
/// of calls and output bytes per window, updated when the hour ends with
/// that hour's mean per window (idle hours count as zero). A window breaches
/// when it holds more than `threshold` times what was learned for the
/// busiest of this hour and the two beside it (a window can straddle hours,
/// and work starts and ends some minutes earlier or later from week to
/// week), and more than the floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Weight of the newest hour in the EWMA, in (0, 1] (default 0.2).
    pub alpha: f64,
    /// How many times the learned value a window may hold, >= 1 (default 5).
    pub threshold: f64,
    /// Samples an hour of the week needs before it is judged on its own;
    /// until then the EWMA over all hours stands in (default 1).
    pub min_slot_samples: u32,
    /// Calls per window never judged abnormal (default 10).
    pub floor_calls: u64,
    /// Output bytes per window never judged abnormal (default 1 MB).
    pub floor_output_bytes: u64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            alpha: 0.2,
            threshold: 5.0,
            min_slot_samples: 1,
            floor_calls: 10,
            floor_output_bytes: 1_000_000,
        }
    }
}

/// A config that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WatchConfigError {
    #[error("unknown time zone `{0}`: use an IANA name such as `Europe/Berlin` or `UTC`")]
    UnknownTimeZone(String),
    #[error("allowed_hours `{value}` is not valid: {reason} (write `HH-HH` in local hours, e.g. `07-19`, or `22-06` across midnight)")]
    AllowedHours { value: String, reason: &'static str },
    #[error("{key} = {value} is out of range: {expected}")]
    OutOfRange {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("watch of agent `{agent}`: {source}")]
    Agent {
        agent: String,
        #[source]
        source: Box<WatchConfigError>,
    },
}

impl WatchConfig {
    /// Checks the numeric ranges (names and hours are checked when parsed).
    pub fn validate(&self) -> Result<(), WatchConfigError> {
        fn out(
            key: &'static str,
            value: impl fmt::Display,
            expected: &'static str,
        ) -> WatchConfigError {
            WatchConfigError::OutOfRange {
                key,
                value: value.to_string(),
                expected,
            }
        }
        if !(1..=3600).contains(&self.window_secs) {
            return Err(out("window_secs", self.window_secs, "1 to 3600 seconds"));
        }
        if let Some(rate) = self.max_refusal_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(out("max_refusal_rate", rate, "a share from 0 to 1"));
            }
        }
        if self.min_calls_for_refusal_rate == 0 {
            return Err(out("min_calls_for_refusal_rate", 0, "at least 1"));
        }
        if let Some(b) = &self.baseline {
            if !(b.alpha > 0.0 && b.alpha <= 1.0) {
                return Err(out("baseline.alpha", b.alpha, "more than 0, at most 1"));
            }
            if !(b.threshold.is_finite() && b.threshold >= 1.0) {
                return Err(out(
                    "baseline.threshold",
                    b.threshold,
                    "a finite number >= 1",
                ));
            }
        }
        Ok(())
    }

    fn window_ms(&self) -> i64 {
        // validate() keeps window_secs within 1..=3600.
        i64::try_from(self.window_secs.clamp(1, 3600)).unwrap_or(60) * 1000
    }
}

/// An IANA time zone, parsed when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

impl Default for TimeZone {
    fn default() -> Self {
        Self(Tz::UTC)
    }
}

impl TimeZone {
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl FromStr for TimeZone {
    type Err = WatchConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<Tz>()
            .map(Self)
            .map_err(|_| WatchConfigError::UnknownTimeZone(s.to_string()))
    }
}

impl TryFrom<String> for TimeZone {
    type Error = WatchConfigError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TimeZone> for String {
    fn from(tz: TimeZone) -> Self {
        tz.name().to_string()
    }
}

/// Local hours in which calls may start: `start` inclusive, `end`
/// exclusive; `start > end` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowedHours {
    start: u8,
    end: u8,
}

impl AllowedHours {
    /// Hours `start..end` (0..=23, 0..=24, not equal).
    pub fn new(start: u8, end: u8) -> Result<Self, WatchConfigError> {
        let bad = |reason| WatchConfigError::AllowedHours {
            value: format!("{start:02}-{end:02}"),
            reason,
        };
        if start > 23 || end > 24 {
            return Err(bad("hours run from 00 to 24"));
        }
        if start == end {
            return Err(bad("start and end are the same hour"));
        }
        Ok(Self { start, end })
    }

    /// Whether a call may start in local hour `hour` (0..=23).
    pub fn contains(&self, hour: u8) -> bool {
        if self.start < self.end {
            self.start <= hour && hour < self.end
        } else {
            hour >= self.start || hour < self.end
        }
    }
}

impl fmt::Display for AllowedHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.start, self.end)
    }
}

impl FromStr for AllowedHours {
    type Err = WatchConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| WatchConfigError::AllowedHours {
            value: s.to_string(),
            reason,
        };
        let (a, b) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("no `-` between the hours"))?;
        let hour = |part: &str| -> Result<u8, WatchConfigError> {
            let part = part.trim();
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("each hour is one or two digits"));
            }
            part.parse()
                .map_err(|_| bad("each hour is one or two digits"))
        };
        Self::new(hour(a)?, hour(b)?).map_err(|e| match e {
            WatchConfigError::AllowedHours { reason, .. } => bad(reason),
            other => other,
        })
    }
}

impl TryFrom<String> for AllowedHours {
    type Error = WatchConfigError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AllowedHours> for String {
    fn from(h: AllowedHours) -> Self {
        h.to_string()
    }
}

/// The rules, with their stable names (ledger, metrics, alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// A call started outside `allowed_hours` (local time): observed 1
    /// call, limit 0; the window is the local hour.
    AllowedHours,
    /// After learning, a call of a tool the agent never called before:
    /// observed 1 tool, limit 0.
    FirstToolUse,
    /// More calls started in the window than `max_calls_per_window`.
    CallsPerWindow,
    /// More output bytes in the window than `max_output_bytes_per_window`.
    OutputBytesPerWindow,
    /// More output records in the window than `max_records_per_window`.
    RecordsPerWindow,
    /// Of at least `min_calls_for_refusal_rate` calls finished in the
    /// window, a larger share refused than `max_refusal_rate`.
    RefusalRate,
    /// After learning, more calls in the window than the baseline allows.
    BaselineCalls,
    /// After learning, more output bytes in the window than the baseline
    /// allows.
    BaselineOutputBytes,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::AllowedHours,
        Rule::FirstToolUse,
        Rule::CallsPerWindow,
        Rule::OutputBytesPerWindow,
        Rule::RecordsPerWindow,
        Rule::RefusalRate,
        Rule::BaselineCalls,
        Rule::BaselineOutputBytes,
    ];

    /// The stable name: `calls-per-window`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::AllowedHours => "allowed-hours",
            Self::FirstToolUse => "first-tool-use",
            Self::CallsPerWindow => "calls-per-window",
            Self::OutputBytesPerWindow => "output-bytes-per-window",
            Self::RecordsPerWindow => "records-per-window",
            Self::RefusalRate => "refusal-rate",
            Self::BaselineCalls => "baseline-calls",
            Self::BaselineOutputBytes => "baseline-output-bytes",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `observed` and `limit` of [`Evidence`] count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    Calls,
    Bytes,
    Records,
    /// A share from 0 to 1.
    Ratio,
    Tools,
}

/// Why an agent breached: what the ledger entry and the alert carry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub rule: Rule,
    pub agent: String,
    /// The tool of the call that tipped it.
    pub tool: String,
    /// Unix ms of that call's event.
    pub at_ms: i64,
    /// The window judged, unix ms, `start..=end`.
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub observed: f64,
    pub limit: f64,
    pub unit: Unit,
    /// One line for the operator.
    pub detail: String,
}

/// The watch's answer to one event.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Verdict {
    Normal,
    /// One or more rules breached (never empty).
    Breach(Vec<Evidence>),
}

impl Verdict {
    pub fn is_breach(&self) -> bool {
        matches!(self, Self::Breach(_))
    }

    /// The evidence (empty when normal).
    pub fn evidence(&self) -> &[Evidence] {
        match self {
            Self::Normal => &[],
            Self::Breach(e) => e,
        }
    }
}

/// How a call ended, as the watch counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Policy refused the call (or the tool failed it).
    pub refused: bool,
    /// Bytes of output returned to the agent.
    pub output_bytes: u64,
    /// Records (rows, items) in that output, as the tool reports them.
    pub records: u64,
}

/// The watch of a node: per-agent state and the suspended set. The
/// pipeline asks [`Watch::is_suspended`] first (refusing `agent-suspended`)
/// and does not feed a suspended agent's calls. Everything is in memory:
/// after a restart the baseline and the tools seen are learned again, and
/// suspensions are restored (from the ledger) with [`Watch::suspend`].
#[derive(Clone, Default)]
pub struct Watch {
    agents: HashMap<String, AgentWatch>,
    default: Option<Arc<WatchConfig>>,
    /// Agents created from the default config.
    defaulted: usize,
    suspended: HashSet<String>,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Watch({} agents, {} suspended)",
            self.agents.len(),
            self.suspended.len()
        )
    }
}

impl Watch {
    /// A watch of the named agents; agents not named are not watched
    /// (see [`Watch::with_default`]).
    pub fn new(
        configs: impl IntoIterator<Item = (String, WatchConfig)>,
    ) -> Result<Self, WatchConfigError> {
        let mut agents = HashMap::new();
        for (agent, config) in configs {
            config.validate().map_err(|e| WatchConfigError::Agent {
                agent: agent.clone(),
                source: Box::new(e),
            })?;
            agents.insert(agent, AgentWatch::new(Arc::new(config)));
        }
        Ok(Self {
            agents,
            ..Self::default()
        })
    }

    /// Also watch agents not named, with `config` (at most
    /// [`MAX_DEFAULT_AGENTS`] of them).
    pub fn with_default(mut self, config: WatchConfig) -> Result<Self, WatchConfigError> {
        config.validate().map_err(|e| WatchConfigError::Agent {
            agent: "(default)".to_string(),
            source: Box::new(e),
        })?;
        self.default = Some(Arc::new(config));
        Ok(self)
    }

    /// Whether `agent` is watched (named, or covered by the default).
    pub fn watches(&self, agent: &str) -> bool {
        self.agents.contains_key(agent) || self.default.is_some()
    }

    /// What to do on a breach by `agent`; `None` if it is not watched.
    pub fn mode(&self, agent: &str) -> Option<Mode> {
        match self.agents.get(agent) {
            Some(a) => Some(a.config.mode),
            None => self.default.as_ref().map(|c| c.mode),
        }
    }

    /// A call by `agent` of `tool` arrived at `now_ms` (unix ms). Feed every
    /// call, also those policy then refuses. Judges `allowed-hours`,
    /// `first-tool-use`, `calls-per-window` and `baseline-calls`.
    pub fn call_started(&mut self, agent: &str, tool: &str, now_ms: i64) -> Verdict {
        match self.state(agent) {
            Some(state) => state.started(agent, tool, now_ms),
            None => Verdict::Normal,
        }
    }

    /// A call by `agent` of `tool` ended at `now_ms` (unix ms), refused or
    /// with its output. Judges `output-bytes-per-window`,
    /// `records-per-window`, `refusal-rate` and `baseline-output-bytes`.
    pub fn call_finished(
        &mut self,
        agent: &str,
        tool: &str,
        now_ms: i64,
        outcome: Outcome,
    ) -> Verdict {
        match self.state(agent) {
            Some(state) => state.finished(agent, tool, now_ms, outcome),
            None => Verdict::Normal,
        }
    }

    /// Marks `agent` suspended; false if it already was.
    pub fn suspend(&mut self, agent: &str) -> bool {
        self.suspended.insert(agent.to_string())
    }

    /// Lifts a suspension; false if `agent` was not suspended. Its window
    /// counts and the rules' quiet periods start afresh; what was learned
    /// (baseline, tools seen) stays.
    pub fn resume(&mut self, agent: &str) -> bool {
        if let Some(state) = self.agents.get_mut(agent) {
            state.reset_windows();
        }
        self.suspended.remove(agent)
    }

    pub fn is_suspended(&self, agent: &str) -> bool {
        self.suspended.contains(agent)
    }

    /// Suspended agents, in no particular order.
    pub fn suspended(&self) -> impl Iterator<Item = &str> {
        self.suspended.iter().map(String::as_str)
    }

    fn state(&mut self, agent: &str) -> Option<&mut AgentWatch> {
        if !self.agents.contains_key(agent) {
            let config = self.default.clone()?;
            if self.defaulted >= MAX_DEFAULT_AGENTS {
                return None;
            }
            self.defaulted += 1;
            self.agents
                .insert(agent.to_string(), AgentWatch::new(config));
        }
        self.agents.get_mut(agent)
    }
}

/// Counts of one tenth of a window.
#[derive(Debug, Clone, Copy, Default)]
struct Slice {
    calls: u64,
    bytes: u64,
    records: u64,
    finished: u64,
    refused: u64,
}

/// A local hour: its UTC span and its place in the week.
#[derive(Debug, Clone, Copy)]
struct LocalHour {
    start_ms: i64,
    end_ms: i64,
    /// Monday 00 = 0 .. Sunday 23 = 167.
    slot: usize,
    hour: u8,
}

fn local_hour(tz: Tz, now_ms: i64) -> LocalHour {
    let ms = now_ms.clamp(0, MAX_MS);
    let local = DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz);
    let into_hour = i64::from(local.minute()) * 60_000
        + i64::from(local.second()) * 1000
        + i64::from(local.timestamp_subsec_millis().min(999));
    let start_ms = ms - into_hour;
    let hour = u8::try_from(local.hour()).unwrap_or(0);
    let day = local.weekday().num_days_from_monday() as usize;
    LocalHour {
        start_ms,
        end_ms: start_ms + HOUR_MS,
        slot: (day * 24 + usize::from(hour)) % SLOTS,
        hour,
    }
}

/// `Wed 2025-04-09 00:30:00` in `tz`.
fn local_time(tz: Tz, now_ms: i64) -> String {
    DateTime::from_timestamp_millis(now_ms.clamp(0, MAX_MS))
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M:%S")
        .to_string()
}

fn slot_name(slot: usize) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!("{} {:02}:00", DAYS[(slot / 24) % 7], slot % 24)
}

/// An exponentially weighted moving average and how many samples made it.
#[derive(Debug, Clone, Copy, Default)]
struct Ewma {
    value: f64,
    samples: u32,
}

impl Ewma {
    fn add(&mut self, x: f64, alpha: f64) {
        if self.samples == 0 {
            self.value = x;
        } else {
            self.value += alpha * (x - self.value);
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// `n` samples of zero.
    fn add_zeros(&mut self, n: u32, alpha: f64) {
        if n == 0 {
            return;
        }
        if self.samples == 0 {
            self.value = 0.0;
        } else {
            self.value *= (1.0 - alpha).powi(i32::try_from(n).unwrap_or(i32::MAX));
        }
        self.samples = self.samples.saturating_add(n);
    }

    fn judged(&self, min: u32) -> Option<f64> {
        (self.samples >= min.max(1)).then_some(self.value)
    }
}

/// Learned calls and output bytes per window, per hour of the week.
#[derive(Debug, Clone)]
struct Baseline {
    calls: [Ewma; SLOTS],
    bytes: [Ewma; SLOTS],
    all_calls: Ewma,
    all_bytes: Ewma,
}

impl Baseline {
    fn new() -> Self {
        Self {
            calls: [Ewma::default(); SLOTS],
            bytes: [Ewma::default(); SLOTS],
            all_calls: Ewma::default(),
            all_bytes: Ewma::default(),
        }
    }

    /// Per window in `slot`: the busiest of this hour (or all hours, while
    /// it has too few samples), the hour before and the hour after. A
    /// window straddles hours, and work starts and ends some minutes
    /// earlier or later from one week to the next.
    /// What was learned for `slot` (see [`Baseline::expected`]) and the
    /// limit a window may reach: `threshold` times that, at least `floor`.
    fn limit(
        config: &BaselineConfig,
        table: &[Ewma; SLOTS],
        all: &Ewma,
        slot: usize,
        floor: u64,
    ) -> Option<(f64, f64)> {
        let expected = Self::expected(table, all, slot, config.min_slot_samples)?;
        Some((expected, (config.threshold * expected).max(floor as f64)))
    }

    fn expected(table: &[Ewma; SLOTS], all: &Ewma, slot: usize, min: u32) -> Option<f64> {
        let here = table[slot % SLOTS]
            .judged(min)
            .or_else(|| all.judged(min))?;
        let near = |s: usize| table[s % SLOTS].judged(min).unwrap_or(0.0);
        Some(here.max(near(slot + SLOTS - 1)).max(near(slot + 1)))
    }
}

/// The hour being accumulated for the baseline.
#[derive(Debug, Clone, Copy)]
struct HourTotals {
    local: LocalHour,
    /// When counting began in it (the agent's first call may be mid-hour).
    from_ms: i64,
    calls: u64,
    bytes: u64,
}

/// One agent's watch.
#[derive(Debug, Clone)]
struct AgentWatch {
    config: Arc<WatchConfig>,
    window_ms: i64,
    slice_ms: i64,
    first_ms: Option<i64>,
    /// Latest time seen: time never goes back within the watch.
    last_ms: i64,
    slices: [Slice; SLICES],
    /// Index (time / slice_ms) of the newest slice.
    head: i64,
    hour: Option<HourTotals>,
    baseline: Option<Box<Baseline>>,
    tools: HashSet<String>,
    quiet_until: [i64; Rule::ALL.len()],
}

enum ToolSeen {
    Known,
    New,
    /// New but the set is full.
    Unremembered,
}

impl AgentWatch {
    fn new(config: Arc<WatchConfig>) -> Self {
        let window_ms = config.window_ms();
        Self {
            window_ms,
            slice_ms: (window_ms / SLICES as i64).max(1),
            first_ms: None,
            last_ms: i64::MIN,
            slices: [Slice::default(); SLICES],
            head: 0,
            hour: None,
            baseline: config.baseline.as_ref().map(|_| Box::new(Baseline::new())),
            tools: HashSet::new(),
            quiet_until: [i64::MIN; Rule::ALL.len()],
            config,
        }
    }

    fn reset_windows(&mut self) {
        self.slices = [Slice::default(); SLICES];
        self.quiet_until = [i64::MIN; Rule::ALL.len()];
    }

    fn learned(&self, now: i64) -> bool {
        let learning = i64::try_from(self.config.learning_hours)
            .unwrap_or(i64::MAX)
            .saturating_mul(HOUR_MS);
        self.first_ms
            .is_some_and(|first| now.saturating_sub(first) >= learning)
    }

    /// Moves the watch to `now_ms` (never backwards): expires slices,
    /// closes ended hours into the baseline. Returns the time to use.
    fn advance(&mut self, now_ms: i64) -> i64 {
        let now = now_ms.clamp(0, MAX_MS).max(self.last_ms);
        self.last_ms = now;
        let index = now / self.slice_ms;
        if self.first_ms.is_none() {
            self.first_ms = Some(now);
            self.head = index;
        }
        let steps = index - self.head;
        if steps > 0 {
            for k in 1..=steps.min(SLICES as i64) {
                self.slices[((self.head + k) % SLICES as i64) as usize] = Slice::default();
            }
            self.head = index;
        }
        match self.hour {
            Some(h) if now < h.local.end_ms => {}
            Some(h) => {
                let next = local_hour(self.config.time_zone.0, now);
                self.close_hour(h, next);
                self.hour = Some(HourTotals {
                    local: next,
                    from_ms: next.start_ms,
                    calls: 0,
                    bytes: 0,
                });
            }
            None => {
                self.hour = Some(HourTotals {
                    local: local_hour(self.config.time_zone.0, now),
                    from_ms: now,
                    calls: 0,
                    bytes: 0,
                })
            }
        }
        now
    }

    /// Feeds hour `h` (and zeros for the idle hours before `next`) to the
    /// baseline.
    fn close_hour(&mut self, h: HourTotals, next: LocalHour) {
        let (Some(baseline), Some(config)) =
            (self.baseline.as_mut(), self.config.baseline.as_ref())
        else {
            return;
        };
        let alpha = config.alpha;
        let windows = ((h.local.end_ms - h.from_ms) as f64 / self.window_ms as f64).max(1.0);
        let calls = h.calls as f64 / windows;
        let bytes = h.bytes as f64 / windows;
        baseline.calls[h.local.slot].add(calls, alpha);
        baseline.bytes[h.local.slot].add(bytes, alpha);
        baseline.all_calls.add(calls, alpha);
        baseline.all_bytes.add(bytes, alpha);
        // Idle hours in between: each slot gets its share of zero samples
        // (slots counted on from this one; a DST change in the gap may
        // shift them by an hour).
        let idle = (next.start_ms - h.local.end_ms).max(0) / HOUR_MS;
        let rounds = idle / SLOTS as i64;
        let rest = idle % SLOTS as i64;
        for i in 0..idle.min(SLOTS as i64) {
            let n = u32::try_from(rounds + i64::from(i < rest)).unwrap_or(u32::MAX);
            let slot = (h.local.slot + 1 + i as usize) % SLOTS;
            baseline.calls[slot].add_zeros(n, alpha);
            baseline.bytes[slot].add_zeros(n, alpha);
        }
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        baseline.all_calls.add_zeros(idle, alpha);
        baseline.all_bytes.add_zeros(idle, alpha);
    }

    fn window(&self) -> Slice {
        self.slices.iter().fold(Slice::default(), |a, s| Slice {
            calls: a.calls + s.calls,
            bytes: a.bytes.saturating_add(s.bytes),
            records: a.records.saturating_add(s.records),
            finished: a.finished + s.finished,
            refused: a.refused + s.refused,
        })
    }

    fn newest(&mut self) -> &mut Slice {
        &mut self.slices[(self.head % SLICES as i64) as usize]
    }

    /// Whether `rule` may be reported at `now`; if so, quiet for a window.
    fn report(&mut self, rule: Rule, now: i64) -> bool {
        let quiet = &mut self.quiet_until[rule.index()];
        if now < *quiet {
            return false;
        }
        *quiet = now.saturating_add(self.window_ms);
        true
    }

    fn see_tool(&mut self, tool: &str) -> ToolSeen {
        if self.tools.contains(tool) {
            ToolSeen::Known
        } else if self.tools.len() < MAX_TOOLS_SEEN {
            self.tools.insert(tool.to_string());
            ToolSeen::New
        } else {
            ToolSeen::Unremembered
        }
    }

    fn started(&mut self, agent: &str, tool: &str, now_ms: i64) -> Verdict {
        let now = self.advance(now_ms);
        self.newest().calls += 1;
        let local = match self.hour.as_mut() {
            Some(h) => {
                h.calls += 1;
                h.local
            }
            None => local_hour(self.config.time_zone.0, now),
        };
        let learned = self.learned(now);
        let window = self.window();
        let window_start = self.window_start();
        let config = Arc::clone(&self.config);
        let tz = config.time_zone.name();
        let mut found = Vec::new();
        let evidence = |rule, start, end, observed: f64, limit: f64, unit, detail| Evidence {
            rule,
            agent: agent.to_string(),
            tool: tool.to_string(),
            at_ms: now,
            window_start_ms: start,
            window_end_ms: end,
            observed,
            limit,
            unit,
            detail,
        };

        if let Some(hours) = config.allowed_hours {
            if !hours.contains(local.hour) && self.report(Rule::AllowedHours, now) {
                found.push(evidence(
                    Rule::AllowedHours,
                    local.start_ms,
                    local.end_ms - 1,
                    1.0,
                    0.0,
                    Unit::Calls,
                    format!(
                        "call of `{tool}` at {} {tz}, outside the allowed hours {hours}",
                        local_time(config.time_zone.0, now)
                    ),
                ));
            }
        }

        if config.alert_on_first_tool_use {
            let seen = self.see_tool(tool);
            let report = match seen {
                ToolSeen::Known => false,
                ToolSeen::New => learned,
                ToolSeen::Unremembered => learned && self.report(Rule::FirstToolUse, now),
            };
            if report {
                let detail = match seen {
                    ToolSeen::Unremembered => format!(
                        "call of `{tool}`, not among the {MAX_TOOLS_SEEN} tools the watch remembers for this agent"
                    ),
                    _ => format!("first call of `{tool}` by this agent since the watch began"),
                };
                let first = self.first_ms.unwrap_or(now);
                found.push(evidence(
                    Rule::FirstToolUse,
                    first,
                    now,
                    1.0,
                    0.0,
                    Unit::Tools,
                    detail,
                ));
            }
        }

        if let Some(max) = config.max_calls_per_window {
            if window.calls > max && self.report(Rule::CallsPerWindow, now) {
                found.push(evidence(
                    Rule::CallsPerWindow,
                    window_start,
                    now,
                    window.calls as f64,
                    max as f64,
                    Unit::Calls,
                    format!(
                        "{} calls in the last {} s, more than max_calls_per_window = {max}",
                        window.calls, config.window_secs
                    ),
                ));
            }
        }

        if let (Some(b), Some(learned_calls), true) =
            (config.baseline.as_ref(), self.baseline.as_ref(), learned)
        {
            let limit = Baseline::limit(
                b,
                &learned_calls.calls,
                &learned_calls.all_calls,
                local.slot,
                b.floor_calls,
            );
            if let Some((expected, limit)) = limit {
                if window.calls as f64 > limit && self.report(Rule::BaselineCalls, now) {
                    found.push(evidence(
                        Rule::BaselineCalls,
                        window_start,
                        now,
                        window.calls as f64,
                        limit,
                        Unit::Calls,
                        format!(
                            "{} calls in the last {} s; learned {expected:.1} per window around {} {tz}, limit {limit:.1} ({} x, floor {})",
                            window.calls, config.window_secs, slot_name(local.slot), b.threshold, b.floor_calls
                        ),
                    ));
                }
            }
        }
        verdict(found)
    }

    fn finished(&mut self, agent: &str, tool: &str, now_ms: i64, outcome: Outcome) -> Verdict {
        let now = self.advance(now_ms);
        {
            let s = self.newest();
            s.bytes = s.bytes.saturating_add(outcome.output_bytes);
            s.records = s.records.saturating_add(outcome.records);
            s.finished += 1;
            s.refused += u64::from(outcome.refused);
        }
        let local = match self.hour.as_mut() {
            Some(h) => {
                h.bytes = h.bytes.saturating_add(outcome.output_bytes);
                h.local
            }
            None => local_hour(self.config.time_zone.0, now),
        };
        let learned = self.learned(now);
        let window = self.window();
        let window_start = self.window_start();
        let config = Arc::clone(&self.config);
        let secs = config.window_secs;
        let tz = config.time_zone.name();
        let mut found = Vec::new();
        let evidence = |rule, observed: f64, limit: f64, unit, detail| Evidence {
            rule,
            agent: agent.to_string(),
            tool: tool.to_string(),
            at_ms: now,
            window_start_ms: window_start,
            window_end_ms: now,
            observed,
            limit,
            unit,
            detail,
        };

        if let Some(max) = config.max_output_bytes_per_window {
            if window.bytes > max && self.report(Rule::OutputBytesPerWindow, now) {
                found.push(evidence(
                    Rule::OutputBytesPerWindow,
                    window.bytes as f64,
                    max as f64,
                    Unit::Bytes,
                    format!(
                        "{} output bytes in the last {secs} s, more than max_output_bytes_per_window = {max}",
                        window.bytes
                    ),
                ));
            }
        }
        if let Some(max) = config.max_records_per_window {
            if window.records > max && self.report(Rule::RecordsPerWindow, now) {
                found.push(evidence(
                    Rule::RecordsPerWindow,
                    window.records as f64,
                    max as f64,
                    Unit::Records,
                    format!(
                        "{} output records in the last {secs} s, more than max_records_per_window = {max}",
                        window.records
                    ),
                ));
            }
        }
        if let Some(max) = config.max_refusal_rate {
            if window.finished >= config.min_calls_for_refusal_rate && window.finished > 0 {
                let rate = window.refused as f64 / window.finished as f64;
                if rate > max && self.report(Rule::RefusalRate, now) {
                    found.push(evidence(
                        Rule::RefusalRate,
                        rate,
                        max,
                        Unit::Ratio,
                        format!(
                            "{} of {} calls refused in the last {secs} s, more than max_refusal_rate = {max}",
                            window.refused, window.finished
                        ),
                    ));
                }
            }
        }
        if let (Some(b), Some(learned_bytes), true) =
            (config.baseline.as_ref(), self.baseline.as_ref(), learned)
        {
            let limit = Baseline::limit(
                b,
                &learned_bytes.bytes,
                &learned_bytes.all_bytes,
                local.slot,
                b.floor_output_bytes,
            );
            if let Some((expected, limit)) = limit {
                if window.bytes as f64 > limit && self.report(Rule::BaselineOutputBytes, now) {
                    found.push(evidence(
                        Rule::BaselineOutputBytes,
                        window.bytes as f64,
                        limit,
                        Unit::Bytes,
                        format!(
                            "{} output bytes in the last {secs} s; learned {expected:.0} per window around {} {tz}, limit {limit:.0} ({} x, floor {})",
                            window.bytes, slot_name(local.slot), b.threshold, b.floor_output_bytes
                        ),
                    ));
                }
            }
        }
        verdict(found)
    }

    /// Start (unix ms) of the oldest slice counted.
    fn window_start(&self) -> i64 {
        (self.head - (SLICES as i64 - 1)).max(0) * self.slice_ms
    }
}

fn verdict(found: Vec<Evidence>) -> Verdict {
    if found.is_empty() {
        Verdict::Normal
    } else {
        Verdict::Breach(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use chrono_tz::{America::New_York, Europe::Berlin};

    const MIN: i64 = 60_000;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        chrono::Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid date")
            .timestamp_millis()
    }

    fn config(toml: &str) -> WatchConfig {
        toml::from_str(toml).expect("config parses")
    }

    fn watch(toml: &str) -> Watch {
        Watch::new([("a".to_string(), config(toml))]).expect("valid config")
    }

    fn rules(v: &Verdict) -> Vec<Rule> {
        v.evidence().iter().map(|e| e.rule).collect()
    }

    #[test]
    fn empty_table_is_the_default() {
        let c = config("");
        assert_eq!(c, WatchConfig::default());
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.window_secs, 60);
        assert_eq!(c.time_zone.name(), "UTC");
        assert!(c.validate().is_ok());
        let b = config("[baseline]\n").baseline.expect("baseline table");
        assert_eq!(b, BaselineConfig::default());
        assert_eq!(config("mode = \"dry-run\"").mode, Mode::DryRun);
    }

    #[test]
    fn config_errors_say_what_is_wrong() {
        let e = toml::from_str::<WatchConfig>("time_zone = \"Europe/Berln\"").unwrap_err();
        assert!(
            e.to_string().contains("unknown time zone `Europe/Berln`"),
            "{e}"
        );
        let e = toml::from_str::<WatchConfig>("max_calls = 3").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        for bad in ["25-03", "7", "07-07", "a-b", "07-123", "-5", "07-25"] {
            let e = toml::from_str::<WatchConfig>(&format!("allowed_hours = \"{bad}\""))
                .expect_err(bad);
            assert!(e.to_string().contains("allowed_hours"), "{bad}: {e}");
        }
        let e = Watch::new([("fin".to_string(), config("window_secs = 0"))]).unwrap_err();
        assert!(e.to_string().contains("agent `fin`"), "{e}");
        assert!(e.to_string().contains("window_secs"), "{e}");
        assert!(config("max_refusal_rate = 1.5").validate().is_err());
        assert!(config("[baseline]\nalpha = 0.0").validate().is_err());
        assert!(config("[baseline]\nthreshold = 0.5").validate().is_err());
        assert!(config("[baseline]\nthreshold = nan").validate().is_err());
    }

    #[test]
    fn hours_parse_and_wrap() {
        let day: AllowedHours = "07-19".parse().unwrap();
        assert!(!day.contains(6) && day.contains(7) && day.contains(18) && !day.contains(19));
        let night: AllowedHours = "22-06".parse().unwrap();
        assert!(night.contains(22) && night.contains(23) && night.contains(0) && night.contains(5));
        assert!(!night.contains(6) && !night.contains(21) && !night.contains(12));
        let all: AllowedHours = "00-24".parse().unwrap();
        assert!((0..24).all(|h| all.contains(h)));
        assert_eq!(night.to_string(), "22-06");
        assert_eq!("7-9".parse::<AllowedHours>().unwrap().to_string(), "07-09");
    }

    #[test]
    fn allowed_hours_wrap_past_midnight() {
        let mut w = watch("allowed_hours = \"22-06\"");
        assert_eq!(
            w.call_started("a", "t", utc(2025, 1, 6, 23, 0)),
            Verdict::Normal
        );
        assert_eq!(
            w.call_started("a", "t", utc(2025, 1, 7, 5, 59)),
            Verdict::Normal
        );
        let v = w.call_started("a", "t", utc(2025, 1, 7, 6, 0));
        assert_eq!(rules(&v), [Rule::AllowedHours]);
        let e = &v.evidence()[0];
        assert_eq!((e.observed, e.limit), (1.0, 0.0));
        assert_eq!(e.window_start_ms, utc(2025, 1, 7, 6, 0));
        assert_eq!(e.window_end_ms, utc(2025, 1, 7, 7, 0) - 1);
        // Quiet for a window, then reported again.
        assert_eq!(
            w.call_started("a", "t", utc(2025, 1, 7, 6, 0) + 1000),
            Verdict::Normal
        );
        let v = w.call_started("a", "t", utc(2025, 1, 7, 21, 59));
        assert_eq!(rules(&v), [Rule::AllowedHours]);
    }

    #[test]
    fn allowed_hours_follow_daylight_saving_time() {
        let cfg = "allowed_hours = \"08-18\"\ntime_zone = \"Europe/Berlin\"";
        // 07:15Z is 08:15 in winter (CET, +1) ...
        assert_eq!(
            watch(cfg).call_started("a", "t", utc(2025, 3, 28, 7, 15)),
            Verdict::Normal
        );
        // ... and 06:15Z is 08:15 after the change on 30 March (CEST, +2),
        assert_eq!(
            watch(cfg).call_started("a", "t", utc(2025, 3, 31, 6, 15)),
            Verdict::Normal
        );
        // which a fixed +1 would call 07:15.
        let v = watch(cfg).call_started("a", "t", utc(2025, 3, 31, 5, 45));
        assert_eq!(rules(&v), [Rule::AllowedHours]);
        let detail = &v.evidence()[0].detail;
        assert!(
            detail.contains("Mon 2025-03-31 07:45:00 Europe/Berlin"),
            "{detail}"
        );
        // Back to CET on 26 October: 07:15Z is 08:15 again, 06:45Z is 07:45.
        assert_eq!(
            watch(cfg).call_started("a", "t", utc(2025, 10, 27, 7, 15)),
            Verdict::Normal
        );
        assert!(watch(cfg)
            .call_started("a", "t", utc(2025, 10, 27, 6, 45))
            .is_breach());
        let local = Berlin
            .with_ymd_and_hms(2025, 7, 1, 17, 59, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(watch(cfg).call_started("a", "t", local), Verdict::Normal);
        assert!(watch(cfg).call_started("a", "t", local + MIN).is_breach());

        let ny = "allowed_hours = \"09-17\"\ntime_zone = \"America/New_York\"";
        // DST began 9 March 2025: 13:30Z is 09:30 EDT (it was 08:30 EST).
        assert_eq!(
            watch(ny).call_started("a", "t", utc(2025, 3, 10, 13, 30)),
            Verdict::Normal
        );
        assert!(watch(ny)
            .call_started("a", "t", utc(2025, 3, 7, 13, 30))
            .is_breach());
        let at = New_York
            .with_ymd_and_hms(2025, 11, 3, 16, 59, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(watch(ny).call_started("a", "t", at), Verdict::Normal);
    }

    #[test]
    fn local_hour_knows_the_hour_of_the_week() {
        // Monday 6 January 2025, 10:30 in Berlin.
        let at = Berlin
            .with_ymd_and_hms(2025, 1, 6, 10, 30, 0)
            .unwrap()
            .timestamp_millis();
        let h = local_hour(Berlin, at);
        assert_eq!((h.slot, h.hour), (10, 10));
        assert_eq!(h.start_ms, at - 30 * MIN);
        assert_eq!(h.end_ms - h.start_ms, HOUR_MS);
        // Sunday 23:xx is the last slot.
        let at = Berlin
            .with_ymd_and_hms(2025, 1, 12, 23, 5, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(local_hour(Berlin, at).slot, 167);
        assert_eq!(slot_name(167), "Sun 23:00");
        // Out-of-range times are clamped, not a panic.
        for t in [i64::MIN, -1, i64::MAX] {
            let _ = local_hour(Berlin, t);
        }
    }

    #[test]
    fn calls_per_window_slides() {
        let mut w = watch("max_calls_per_window = 5");
        let t0 = utc(2025, 1, 6, 10, 0);
        for i in 0..5 {
            assert_eq!(w.call_started("a", "t", t0 + i * 1000), Verdict::Normal);
        }
        let v = w.call_started("a", "t", t0 + 5000);
        assert_eq!(rules(&v), [Rule::CallsPerWindow]);
        let e = &v.evidence()[0];
        assert_eq!((e.observed, e.limit, e.unit), (6.0, 5.0, Unit::Calls));
        assert_eq!(e.window_start_ms, t0 - 54_000);
        assert_eq!(e.window_end_ms, t0 + 5000);
        // Quiet for the rest of the window.
        assert_eq!(w.call_started("a", "t", t0 + 6000), Verdict::Normal);
        // A window later the old calls have slid out.
        let mut w = watch("max_calls_per_window = 5");
        for i in 0..5 {
            let _ = w.call_started("a", "t", t0 + i * 1000);
        }
        for i in 0..5 {
            assert_eq!(
                w.call_started("a", "t", t0 + 61_000 + i * 1000),
                Verdict::Normal
            );
        }
        assert!(w.call_started("a", "t", t0 + 66_000).is_breach());
    }

    #[test]
    fn output_bytes_and_records_per_window() {
        let mut w = watch("max_output_bytes_per_window = 1000\nmax_records_per_window = 10");
        let t0 = utc(2025, 1, 6, 10, 0);
        let out = |bytes, records| Outcome {
            refused: false,
            output_bytes: bytes,
            records,
        };
        assert_eq!(w.call_finished("a", "t", t0, out(600, 6)), Verdict::Normal);
        let v = w.call_finished("a", "t", t0 + 1000, out(600, 6));
        assert_eq!(
            rules(&v),
            [Rule::OutputBytesPerWindow, Rule::RecordsPerWindow]
        );
        assert_eq!(v.evidence()[0].observed, 1200.0);
        assert_eq!(v.evidence()[1].limit, 10.0);
        assert_eq!(
            w.call_finished("a", "t", t0 + 2000, out(u64::MAX, u64::MAX)),
            Verdict::Normal
        );
    }

    #[test]
    fn refusal_rate_needs_enough_calls() {
        let mut w = watch("max_refusal_rate = 0.5\nmin_calls_for_refusal_rate = 4");
        let t0 = utc(2025, 1, 6, 10, 0);
        let refused = Outcome {
            refused: true,
            ..Outcome::default()
        };
        let ok = Outcome::default();
        assert_eq!(w.call_finished("a", "t", t0, ok), Verdict::Normal);
        assert_eq!(w.call_finished("a", "t", t0 + 1, refused), Verdict::Normal);
        assert_eq!(w.call_finished("a", "t", t0 + 2, refused), Verdict::Normal);
        let v = w.call_finished("a", "t", t0 + 3, refused);
        assert_eq!(rules(&v), [Rule::RefusalRate]);
        assert_eq!(
            (v.evidence()[0].observed, v.evidence()[0].limit),
            (0.75, 0.5)
        );
    }

    #[test]
    fn first_tool_use_after_learning_once_per_tool() {
        let mut w = watch("alert_on_first_tool_use = true\nlearning_hours = 1");
        let t0 = utc(2025, 1, 6, 10, 0);
        assert_eq!(w.call_started("a", "read", t0), Verdict::Normal);
        assert_eq!(w.call_started("a", "list", t0 + 30 * MIN), Verdict::Normal);
        let later = t0 + 2 * HOUR_MS;
        assert_eq!(w.call_started("a", "read", later), Verdict::Normal);
        assert_eq!(w.call_started("a", "list", later), Verdict::Normal);
        let v = w.call_started("a", "transfer", later + 1);
        assert_eq!(rules(&v), [Rule::FirstToolUse]);
        assert_eq!(v.evidence()[0].unit, Unit::Tools);
        assert!(v.evidence()[0].detail.contains("`transfer`"));
        assert_eq!(w.call_started("a", "transfer", later + 2), Verdict::Normal);
        // Off by default.
        let mut w = watch("learning_hours = 0");
        assert_eq!(w.call_started("a", "x", t0), Verdict::Normal);
    }

    #[test]
    fn a_full_tool_set_fails_closed() {
        let mut w = watch("alert_on_first_tool_use = true\nlearning_hours = 1");
        let t0 = utc(2025, 1, 6, 10, 0);
        for i in 0..MAX_TOOLS_SEEN {
            let _ = w.call_started("a", &format!("t{i}"), t0);
        }
        let later = t0 + 2 * HOUR_MS;
        assert_eq!(w.call_started("a", "t7", later), Verdict::Normal);
        let v = w.call_started("a", "one-too-many", later);
        assert_eq!(rules(&v), [Rule::FirstToolUse]);
        assert!(v.evidence()[0].detail.contains("remembers"));
        assert_eq!(
            w.call_started("a", "another", later + 1),
            Verdict::Normal,
            "quiet"
        );
        assert!(w.call_started("a", "another", later + 61_000).is_breach());
    }

    /// `per_min` calls a minute with `bytes` each, from `from` for `minutes`.
    fn steady(w: &mut Watch, from: i64, minutes: i64, per_min: i64, bytes: u64) -> Vec<Evidence> {
        let mut found = Vec::new();
        for m in 0..minutes {
            for c in 0..per_min {
                let t = from + m * MIN + c * (MIN / per_min);
                found.extend(w.call_started("a", "t", t).evidence().iter().cloned());
                let out = Outcome {
                    output_bytes: bytes,
                    records: 1,
                    ..Outcome::default()
                };
                found.extend(
                    w.call_finished("a", "t", t + 10, out)
                        .evidence()
                        .iter()
                        .cloned(),
                );
            }
        }
        found
    }

    #[test]
    fn baseline_learns_each_hour_of_the_week() {
        let cfg = "learning_hours = 48\n[baseline]\nfloor_calls = 5\nfloor_output_bytes = 1000";
        let mut w = watch(cfg);
        // Learning: Monday and Tuesday 10:00-11:00 UTC, 10 calls a minute of 1 kB.
        let mon = utc(2025, 1, 6, 10, 0);
        assert!(steady(&mut w, mon, 60, 10, 1000).is_empty());
        assert!(steady(&mut w, mon + 24 * HOUR_MS, 60, 10, 1000).is_empty());
        // A week later the same hour is normal ...
        let next = mon + 7 * 24 * HOUR_MS;
        assert!(steady(&mut w, next, 60, 10, 1000).is_empty());
        // ... and 10 x as many calls in it is not: caught within a window.
        let burst = next + 24 * HOUR_MS;
        let found = steady(&mut w, burst, 2, 100, 1000);
        let calls = found
            .iter()
            .find(|e| e.rule == Rule::BaselineCalls)
            .expect("baseline-calls breach");
        assert!(
            calls.at_ms - burst < MIN,
            "caught after {} ms",
            calls.at_ms - burst
        );
        assert!((calls.limit - 50.0).abs() < 1.0, "5 x 10: {}", calls.limit);
        assert!(found.iter().any(|e| e.rule == Rule::BaselineOutputBytes));
        let json = serde_json::to_value(calls).unwrap();
        assert_eq!(json["rule"], "baseline-calls");
        assert_eq!(json["unit"], "calls");
        assert_eq!(json["agent"], "a");
    }

    #[test]
    fn baseline_judges_idle_hours_by_the_floor() {
        let cfg = "learning_hours = 24\n[baseline]\nfloor_calls = 20\nfloor_output_bytes = 100000";
        let mut w = watch(cfg);
        let mon = utc(2025, 1, 6, 10, 0);
        assert!(steady(&mut w, mon, 60, 10, 1000).is_empty());
        // Wednesday 03:00 has learned nothing but zeros: the floor is the limit.
        let night = utc(2025, 1, 8, 3, 0);
        assert!(steady(&mut w, night, 1, 20, 1000).is_empty());
        let found = steady(&mut w, night + 5 * MIN, 1, 30, 1000);
        let e = found.first().expect("breach over the floor");
        assert_eq!(
            (e.rule, e.limit, e.observed),
            (Rule::BaselineCalls, 20.0, 21.0)
        );
    }

    #[test]
    fn ewma_counts_idle_hours_as_zero() {
        let mut e = Ewma::default();
        e.add(10.0, 0.5);
        assert_eq!(e.value, 10.0);
        e.add_zeros(2, 0.5);
        assert!((e.value - 2.5).abs() < 1e-9);
        assert_eq!(e.samples, 3);
        assert_eq!(e.judged(4), None);
        let mut z = Ewma::default();
        z.add_zeros(1, 0.2);
        assert_eq!(z.judged(1), Some(0.0));
    }

    #[test]
    fn suspension_and_unwatched_agents() {
        let mut w = watch("max_calls_per_window = 1\nmode = \"dry-run\"");
        let t0 = utc(2025, 1, 6, 10, 0);
        assert_eq!(w.mode("a"), Some(Mode::DryRun));
        assert_eq!(w.mode("b"), None);
        assert!(!w.watches("b"));
        assert_eq!(w.call_started("b", "t", t0), Verdict::Normal);
        let _ = w.call_started("a", "t", t0);
        assert!(w.call_started("a", "t", t0 + 1).is_breach());
        assert!(w.suspend("a"));
        assert!(!w.suspend("a"));
        assert!(w.is_suspended("a"));
        assert_eq!(w.suspended().collect::<Vec<_>>(), ["a"]);
        assert!(w.resume("a"));
        assert!(!w.resume("a"));
        assert!(!w.is_suspended("a"));
        // Resumed with a fresh window.
        assert_eq!(w.call_started("a", "t", t0 + 2), Verdict::Normal);

        let mut w = Watch::default()
            .with_default(config("max_calls_per_window = 1"))
            .unwrap();
        assert!(w.watches("anyone"));
        assert_eq!(w.mode("anyone"), Some(Mode::Enforce));
        let _ = w.call_started("anyone", "t", t0);
        assert!(w.call_started("anyone", "t", t0 + 1).is_breach());
    }

    #[test]
    fn time_going_back_or_out_of_range_does_not_panic() {
        let mut w = watch(
            "max_calls_per_window = 100\nallowed_hours = \"07-19\"\nalert_on_first_tool_use = true\n[baseline]",
        );
        let t0 = utc(2025, 1, 6, 10, 0);
        for t in [t0, t0 - HOUR_MS, i64::MIN, i64::MAX, 0, t0] {
            let _ = w.call_started("a", "t", t);
            let _ = w.call_finished("a", "t", t, Outcome::default());
        }
    }
}
