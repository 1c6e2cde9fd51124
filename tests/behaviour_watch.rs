//! The behavioural watch on generated traffic (issue 20, item 4): a
//! "finance" agent works weekdays 08-18 Europe/Berlin at about 10 calls a
//! minute. The watch learns it for a week (across the switch to summer
//! time), must then stay quiet for a second week of normal traffic, and
//! must catch, within one window, three bursts of 10x the agent's volume
//! in a third week: at 00:30 (a disallowed hour), at 10:30 (allowed, so
//! only the learned baseline can tell) as 10x the calls, and at 14:30 as
//! 10x the output bytes at the usual call rate. It prints the detection
//! delays and the false-positive count. benches/watch.rs runs the same
//! scenarios (this file is included there) and adds throughput.

use chrono::{Days, NaiveDate, TimeZone};
use chrono_tz::Europe::Berlin;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil::policy::watch::{Evidence, Mode, Outcome, Rule, Watch, WatchConfig};

pub const AGENT: &str = "finance";
pub const WINDOW_MS: i64 = 60_000;
/// Calls a minute at the busiest hours of an average day.
pub const BASE_PER_MIN: f64 = 10.0;
/// Seeds the test runs; the first is the one the bench reports in detail.
pub const SEEDS: [u64; 3] = [0x5eed_0001, 0x5eed_0002, 0x5eed_0003];

/// The finance agent's watch, as it would stand in vigil.toml.
pub const CONFIG: &str = r#"
mode = "enforce"
window_secs = 60
allowed_hours = "07-20"
time_zone = "Europe/Berlin"
max_calls_per_window = 200
max_output_bytes_per_window = 8000000
max_records_per_window = 80000
max_refusal_rate = 0.5
min_calls_for_refusal_rate = 10
alert_on_first_tool_use = true
learning_hours = 168

[baseline]
alpha = 0.3
threshold = 5.0
floor_calls = 20
floor_output_bytes = 100000
"#;

pub fn config() -> WatchConfig {
    toml::from_str(CONFIG).expect("the finance watch config parses")
}

pub fn new_watch() -> Watch {
    Watch::new([(AGENT.to_string(), config())]).expect("the finance watch config is valid")
}

/// One call: when it started and ended (unix ms), which tool, its outcome.
#[derive(Debug, Clone)]
pub struct Call {
    pub start_ms: i64,
    pub end_ms: i64,
    pub tool: &'static str,
    pub outcome: Outcome,
}

/// What the pipeline feeds the watch.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        at_ms: i64,
        tool: &'static str,
    },
    Finished {
        at_ms: i64,
        tool: &'static str,
        outcome: Outcome,
    },
}

impl Event {
    pub fn at_ms(&self) -> i64 {
        match self {
            Self::Started { at_ms, .. } | Self::Finished { at_ms, .. } => *at_ms,
        }
    }
}

/// Calls as a time-ordered stream of events.
pub fn events(calls: &[Call]) -> Vec<Event> {
    let mut out = Vec::with_capacity(calls.len() * 2);
    for c in calls {
        out.push(Event::Started {
            at_ms: c.start_ms,
            tool: c.tool,
        });
        out.push(Event::Finished {
            at_ms: c.end_ms,
            tool: c.tool,
            outcome: c.outcome,
        });
    }
    out.sort_by_key(Event::at_ms);
    out
}

/// Berlin local time to unix ms.
pub fn berlin(date: NaiveDate, minute_of_day: u32) -> i64 {
    let naive = date
        .and_hms_opt(minute_of_day / 60, minute_of_day % 60, 0)
        .expect("a time of day");
    Berlin
        .from_local_datetime(&naive)
        .earliest()
        .expect("not in a DST gap")
        .timestamp_millis()
}

/// Share of the base rate by local hour (fractional): a ramp in the
/// morning, a lunch dip, a ramp down in the evening.
fn shape(hour: f64) -> f64 {
    if hour < 9.0 {
        0.4 + 0.6 * (hour - 8.0).clamp(0.0, 1.0)
    } else if hour < 12.0 {
        1.0
    } else if hour < 13.0 {
        0.6
    } else if hour < 17.0 {
        0.95
    } else {
        (0.95 - 0.55 * (hour - 17.0)).max(0.3)
    }
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn one_call(rng: &mut StdRng, start_ms: i64, volume: f64) -> Call {
    let tool = match rng.gen_range(0..100) {
        0..=49 => "ledger.query",
        50..=74 => "invoice.read",
        75..=89 => "fx.rates",
        _ => "report.render",
    };
    let refused = rng.gen_bool(0.02);
    let bytes = if refused {
        0
    } else {
        (4000.0 * (0.6 * normal(rng)).exp() * volume) as u64
    };
    Call {
        start_ms,
        end_ms: start_ms + rng.gen_range(50..800),
        tool,
        outcome: Outcome {
            refused,
            output_bytes: bytes,
            records: if refused { 0 } else { bytes / 120 + 1 },
        },
    }
}

/// Poisson arrivals at `per_min` calls a minute during `[from, from + 60 s)`.
fn minute_of_calls(rng: &mut StdRng, from: i64, per_min: f64, volume: f64, out: &mut Vec<Call>) {
    if per_min <= 0.0 {
        return;
    }
    let mut t = 0.0;
    loop {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        t += -u.ln() / per_min * 60_000.0;
        if t >= 60_000.0 {
            return;
        }
        out.push(one_call(rng, from + t as i64, volume));
    }
}

/// A week of normal work from `monday` (a Monday): weekdays from about
/// 08:00 to 18:00 Berlin time with the daily shape, a day-to-day factor of
/// 0.85-1.15 and a minute-to-minute one of 0.75-1.25; now and then a short
/// look on Saturday morning.
pub fn normal_week(rng: &mut StdRng, monday: NaiveDate) -> Vec<Call> {
    let mut calls = Vec::new();
    for day in 0..7u64 {
        let date = monday + Days::new(day);
        let (first, last, day_factor) = if day < 5 {
            let first = (8 * 60 + rng.gen_range(-15i32..=10)) as u32;
            let last = (18 * 60 + rng.gen_range(-20i32..=20)) as u32;
            (first, last, rng.gen_range(0.85..1.15))
        } else if day == 5 && rng.gen_bool(0.5) {
            (10 * 60, 10 * 60 + 30, 0.2)
        } else {
            continue;
        };
        for minute in first..last {
            let rate = BASE_PER_MIN
                * shape(f64::from(minute) / 60.0)
                * day_factor
                * rng.gen_range(0.75..1.25);
            minute_of_calls(rng, berlin(date, minute), rate, 1.0, &mut calls);
        }
    }
    calls.sort_by_key(|c| c.start_ms);
    calls
}

/// Feeds `events` as the pipeline would. With `enforce`, the first breach
/// suspends the agent and its later calls are refused before the watch
/// sees them (returned as the count refused). Returns every evidence.
pub fn feed(watch: &mut Watch, events: &[Event], enforce: bool) -> (Vec<Evidence>, usize) {
    let mut found = Vec::new();
    let mut refused = 0;
    for e in events {
        if watch.is_suspended(AGENT) {
            if matches!(e, Event::Started { .. }) {
                refused += 1;
            }
            continue;
        }
        let verdict = match *e {
            Event::Started { at_ms, tool } => watch.call_started(AGENT, tool, at_ms),
            Event::Finished {
                at_ms,
                tool,
                outcome,
            } => watch.call_finished(AGENT, tool, at_ms, outcome),
        };
        if verdict.is_breach() {
            found.extend(verdict.evidence().iter().cloned());
            if enforce {
                watch.suspend(AGENT);
            }
        }
    }
    (found, refused)
}

/// How a burst went.
#[derive(Debug, Clone)]
pub struct Burst {
    pub name: &'static str,
    pub start_ms: i64,
    /// Calls in the burst's five minutes (normal ones included).
    pub calls: usize,
    /// Breaches of normal traffic before the burst began.
    pub false_before: usize,
    /// When the agent was suspended, after the burst began.
    pub delay_ms: Option<i64>,
    /// Rules of the breach that suspended it.
    pub rules: Vec<Rule>,
    pub evidence: Vec<Evidence>,
    /// Calls of the burst refused once suspended.
    pub refused: usize,
}

/// Everything one seed gives.
#[derive(Debug, Clone)]
pub struct Run {
    pub seed: u64,
    pub learning_calls: usize,
    pub learning_breaches: Vec<Evidence>,
    pub normal_calls: usize,
    /// Breaches over the week of normal traffic after learning.
    pub false_positives: Vec<Evidence>,
    pub bursts: Vec<Burst>,
}

impl Run {
    /// False positives over the normal week and the normal traffic before
    /// each burst.
    pub fn false_positive_count(&self) -> usize {
        self.false_positives.len() + self.bursts.iter().map(|b| b.false_before).sum::<usize>()
    }
}

pub const LEARNING_MONDAY: (i32, u32, u32) = (2025, 3, 24);

pub fn date(ymd: (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(ymd.0, ymd.1, ymd.2).expect("a date")
}

/// The two generated weeks a run learns and is judged on.
pub fn two_weeks(seed: u64) -> (Vec<Call>, Vec<Call>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let monday = date(LEARNING_MONDAY);
    let learning = normal_week(&mut rng, monday);
    let normal = normal_week(&mut rng, monday + Days::new(7));
    (learning, normal)
}

pub fn run(seed: u64) -> Run {
    let (learning, normal) = two_weeks(seed);
    let mut watch = new_watch();
    assert_eq!(watch.mode(AGENT), Some(Mode::Enforce));
    // Counted as a dry run would: every anomaly, no suspension.
    let (learning_breaches, _) = feed(&mut watch, &events(&learning), false);
    let (false_positives, _) = feed(&mut watch, &events(&normal), false);

    let mut rng = StdRng::seed_from_u64(seed ^ 0xb0b5);
    let week3 = date(LEARNING_MONDAY) + Days::new(14);
    let third = normal_week(&mut rng, week3);
    let wednesday = week3 + Days::new(2);
    let kinds: [(&'static str, u32, f64, f64); 3] = [
        // name, local minute of day, extra calls a minute, output factor
        (
            "00:30 burst, 10x calls (disallowed hour)",
            30,
            10.0 * BASE_PER_MIN,
            1.0,
        ),
        (
            "10:30 burst, 10x calls (allowed hour)",
            10 * 60 + 30,
            9.0 * BASE_PER_MIN,
            1.0,
        ),
        (
            "14:30 burst, 10x output bytes (allowed hour)",
            14 * 60 + 30,
            0.0,
            10.0,
        ),
    ];
    let bursts = kinds
        .iter()
        .map(|&(name, minute, extra, factor)| {
            let start_ms = berlin(wednesday, minute);
            let end_ms = start_ms + 5 * 60_000;
            let mut calls: Vec<Call> = third
                .iter()
                .filter(|c| c.start_ms < end_ms)
                .cloned()
                .map(|mut c| {
                    if c.start_ms >= start_ms {
                        c.outcome.output_bytes = (c.outcome.output_bytes as f64 * factor) as u64;
                        c.outcome.records = c.outcome.output_bytes / 120 + 1;
                    }
                    c
                })
                .collect();
            for m in 0..5 {
                minute_of_calls(&mut rng, start_ms + m * 60_000, extra, 1.0, &mut calls);
            }
            let (before, during): (Vec<Call>, Vec<Call>) =
                calls.into_iter().partition(|c| c.start_ms < start_ms);
            let mut w = watch.clone();
            let (false_before, _) = feed(&mut w, &events(&before), false);
            let (evidence, refused) = feed(&mut w, &events(&during), true);
            let first_at = evidence.first().map(|e| e.at_ms);
            Burst {
                name,
                start_ms,
                calls: during.len(),
                false_before: false_before.len(),
                delay_ms: first_at
                    .filter(|_| w.is_suspended(AGENT))
                    .map(|t| t - start_ms),
                rules: evidence
                    .iter()
                    .filter(|e| Some(e.at_ms) == first_at)
                    .map(|e| e.rule)
                    .collect(),
                evidence,
                refused,
            }
        })
        .collect();
    Run {
        seed,
        learning_calls: learning.len(),
        learning_breaches,
        normal_calls: normal.len(),
        false_positives,
        bursts,
    }
}

/// Prints a run as the acceptance asks: detection delays and false
/// positives.
pub fn report(run: &Run) {
    println!(
        "seed {:#x}: learning week {} calls ({} breaches), normal week {} calls, false positives {}",
        run.seed,
        run.learning_calls,
        run.learning_breaches.len(),
        run.normal_calls,
        run.false_positive_count()
    );
    for e in run.false_positives.iter().chain(&run.learning_breaches) {
        println!("  false positive: {}: {}", e.rule, e.detail);
    }
    for b in &run.bursts {
        match b.delay_ms {
            Some(delay) => println!(
                "  {}: suspended after {delay} ms by {} ({} burst calls, {} refused once suspended)",
                b.name,
                b.rules.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "),
                b.calls,
                b.refused
            ),
            None => println!("  {}: NOT detected ({} burst calls)", b.name, b.calls),
        }
        if let Some(e) = b.evidence.first() {
            println!(
                "    evidence: {}",
                serde_json::to_string(e).unwrap_or_default()
            );
        }
    }
}

#[test]
fn bursts_are_caught_within_a_window_and_normal_weeks_are_quiet() {
    for seed in SEEDS {
        let run = run(seed);
        report(&run);
        assert!(
            run.learning_calls > 15_000,
            "a busy week: {}",
            run.learning_calls
        );
        assert!(
            run.normal_calls > 15_000,
            "a busy week: {}",
            run.normal_calls
        );
        assert_eq!(
            run.false_positive_count(),
            0,
            "seed {seed:#x}: false positives"
        );
        assert!(run.learning_breaches.is_empty(), "seed {seed:#x}");
        let [night, rate, volume] = &run.bursts[..] else {
            panic!("three bursts");
        };
        // 10x the calls (so 10x the volume): within one window. 10x the
        // bytes at the usual ~9 calls a minute is noisier (few calls,
        // sizes spread): within two.
        for (b, within) in [
            (night, WINDOW_MS),
            (rate, WINDOW_MS),
            (volume, 2 * WINDOW_MS),
        ] {
            let delay = b
                .delay_ms
                .unwrap_or_else(|| panic!("seed {seed:#x}: {} not caught", b.name));
            assert!(
                (0..=within).contains(&delay),
                "seed {seed:#x}: {} caught after {delay} ms, more than {within} ms",
                b.name
            );
            assert!(b.refused > 0, "{}: later burst calls refused", b.name);
        }
        assert_eq!(night.rules[0], Rule::AllowedHours, "{:?}", night.rules);
        // In allowed hours, under the absolute limits: only the baseline
        // can see these.
        assert!(
            rate.rules
                .iter()
                .all(|r| matches!(r, Rule::BaselineCalls | Rule::BaselineOutputBytes)),
            "{:?}",
            rate.rules
        );
        assert_eq!(volume.rules, [Rule::BaselineOutputBytes]);
        let e = &volume.evidence[0];
        assert!(e.observed > e.limit && e.window_end_ms - e.window_start_ms <= WINDOW_MS);
        let json = serde_json::to_value(e).expect("evidence serialises");
        assert_eq!(json["rule"], "baseline-output-bytes");
        assert_eq!(json["agent"], AGENT);
    }
}

#[test]
fn the_same_week_without_a_baseline_or_hours_is_not_caught() {
    // Control: with only the absolute limits, the 10:30 burst (about 100
    // calls and 500 kB a minute) goes through, so the baseline above is
    // what catches it.
    let mut cfg = config();
    cfg.baseline = None;
    cfg.allowed_hours = None;
    let mut watch = Watch::new([(AGENT.to_string(), cfg)]).expect("valid");
    let mut rng = StdRng::seed_from_u64(SEEDS[0]);
    let monday = date(LEARNING_MONDAY);
    let week = normal_week(&mut rng, monday);
    let (found, _) = feed(&mut watch, &events(&week), true);
    assert!(found.is_empty(), "{found:?}");
    let start = berlin(monday + Days::new(9), 10 * 60 + 30);
    let mut burst = Vec::new();
    for m in 0..5 {
        minute_of_calls(
            &mut rng,
            start + m * 60_000,
            10.0 * BASE_PER_MIN,
            1.0,
            &mut burst,
        );
    }
    let (found, _) = feed(&mut watch, &events(&burst), true);
    assert!(found.is_empty(), "{found:?}");
}
