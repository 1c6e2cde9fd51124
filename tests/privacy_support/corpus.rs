//! A labelled corpus for the privacy filter, generated deterministically:
//! positives of every kind in varied formats inside varied sentences, and
//! near misses (Luhn-failing numbers, version strings, dates, UUIDs, git
//! hashes, ...) that must stay. Shared by `tests/privacy_corpus.rs` and
//! `benches/privacy.rs` (included with `#[path]`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use vigil::privacy::{PiiKind, Redactor};

/// One text and the findings it holds (byte range, kind).
pub struct Sample {
    pub text: String,
    pub expected: Vec<(usize, usize, PiiKind)>,
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    pub fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";

/// Sentences a value is placed in (`{}` marks the value).
const TEMPLATES: &[&str] = &[
    "{}",
    "Contact: {}",
    "The customer record lists {} as of today.",
    "{{\"value\": \"{}\", \"ok\": true}}",
    "note={} (verified)",
    "- {}\n- second line",
    "Please use {}, thanks.",
    "[{}]",
];

fn place(rng: &mut Rng, value: &str, kind: Option<PiiKind>) -> Sample {
    let template = *rng.pick(TEMPLATES);
    let template = template.replace("{{", "{").replace("}}", "}");
    let at = template.find("{}").unwrap_or(0);
    let text = format!("{}{}{}", &template[..at], value, &template[at + 2..]);
    let expected = kind
        .map(|k| vec![(at, at + value.len(), k)])
        .unwrap_or_default();
    Sample { text, expected }
}

fn luhn_complete(prefix_and_body: &str) -> String {
    // Append the digit that makes the Luhn sum 0.
    for d in 0..10 {
        let candidate = format!("{prefix_and_body}{d}");
        if vigil::privacy::checks::luhn_ok(&candidate) {
            return candidate;
        }
    }
    unreachable!("one check digit always fits")
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        if at >= s.len() {
            break;
        }
        let end = (at + n).min(s.len());
        out.push(&s[at..end]);
        at = end;
    }
    if at < s.len() {
        out.push(&s[at..]);
    }
    out.join(sep)
}

fn iban_with_check(country: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{country}00");
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    format!("{country}{:02}{bban}", 98 - rem)
}

fn b64url_json(json: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// A positive of `kind`, in one of its formats; for `Secret` the value and
/// the text around it differ, so the range is returned too.
fn positive(rng: &mut Rng, kind: PiiKind) -> Sample {
    let value = match kind {
        PiiKind::Email => {
            let first = rng
                .pick(&[
                    "alice",
                    "bob",
                    "j.doe",
                    "maria_lopez",
                    "Chen.Wei",
                    "ops-team",
                    "x",
                ])
                .to_string();
            let tag = rng.pick(&["", "+billing", ".2024", "42"]).to_string();
            let domain = rng.pick(&[
                "example.com",
                "mail.example.co.uk",
                "corp.example.org",
                "EXAMPLE.NET",
                "sub.domain.io",
            ]);
            format!("{first}{tag}@{domain}")
        }
        PiiKind::Phone => match rng.below(8) {
            0 => format!(
                "+1 ({}) {}-{}",
                rng.digits(3).replacen('0', "4", 1),
                rng.digits(3),
                rng.digits(4)
            ),
            1 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
            2 => format!("+49 30 {}", rng.digits(7)),
            3 => format!("(415) {}-{}", rng.digits(3), rng.digits(4)),
            4 => format!("212-{}-{}", rng.digits(3), rng.digits(4)),
            5 => format!("646.{}.{}", rng.digits(3), rng.digits(4)),
            6 => format!(
                "+33 6 {} {} {} {}",
                rng.digits(2),
                rng.digits(2),
                rng.digits(2),
                rng.digits(2)
            ),
            _ => format!("+1415{}", rng.digits(7)),
        },
        PiiKind::CreditCard => {
            let (prefix, len) = *rng.pick(&[
                ("4", 16),
                ("51", 16),
                ("55", 16),
                ("37", 15),
                ("34", 15),
                ("6011", 16),
                ("4", 13),
            ]);
            let body = rng.digits(len - prefix.len() - 1);
            let number = luhn_complete(&format!("{prefix}{body}"));
            match (len, rng.below(3)) {
                (15, 0) => group(&number, &[4, 6, 5], " "),
                (16, 0) => group(&number, &[4, 4, 4, 4], " "),
                (16, 1) => group(&number, &[4, 4, 4, 4], "-"),
                _ => number,
            }
        }
        PiiKind::Iban => {
            let iban = match rng.below(5) {
                0 => iban_with_check("DE", &rng.digits(18)),
                1 => iban_with_check(
                    "GB",
                    &format!(
                        "{}{}",
                        rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                        rng.digits(14)
                    ),
                ),
                2 => iban_with_check("FR", &rng.digits(23)),
                3 => iban_with_check(
                    "NL",
                    &format!(
                        "{}{}",
                        rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                        rng.digits(10)
                    ),
                ),
                _ => iban_with_check("ES", &rng.digits(20)),
            };
            if rng.below(2) == 0 {
                group(&iban, &[4, 4, 4, 4, 4, 4, 4, 4], " ")
            } else {
                iban
            }
        }
        PiiKind::Ssn => {
            let area = 1 + rng.below(665);
            let group_n = 1 + rng.below(98);
            let serial = 1 + rng.below(9998);
            let sep = *rng.pick(&["-", " "]);
            format!("{area:03}{sep}{group_n:02}{sep}{serial:04}")
        }
        PiiKind::Ipv4 => {
            let ip = format!(
                "{}.{}.{}.{}",
                1 + rng.below(223),
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            );
            return match rng.below(3) {
                0 => place(rng, &ip, Some(kind)),
                1 => {
                    let text = format!("connect to {ip}:8443 now");
                    Sample {
                        expected: vec![(11, 11 + ip.len(), kind)],
                        text,
                    }
                }
                _ => {
                    let text = format!("see http://{ip}/status");
                    Sample {
                        expected: vec![(11, 11 + ip.len(), kind)],
                        text,
                    }
                }
            };
        }
        PiiKind::Ipv6 => {
            let h = |rng: &mut Rng| format!("{:x}", rng.below(0x10000));
            match rng.below(4) {
                0 => (0..8).map(|_| h(rng)).collect::<Vec<_>>().join(":"),
                1 => format!("2001:db8::{}", h(rng)),
                2 => format!("fe80::{}:{}:{}:{}", h(rng), h(rng), h(rng), h(rng)),
                _ => format!("2a00:1450:{}:{}::{}", h(rng), h(rng), h(rng)),
            }
        }
        PiiKind::AwsAccessKey => format!(
            "{}{}",
            rng.pick(&["AKIA", "ASIA"]),
            rng.chars(16, UPPER_B32)
        ),
        PiiKind::GithubToken => match rng.below(3) {
            0 => format!("ghp_{}", rng.chars(36, ALNUM)),
            1 => format!("gho_{}", rng.chars(36, ALNUM)),
            _ => format!(
                "github_pat_{}_{}",
                rng.chars(22, ALNUM),
                rng.chars(59, ALNUM)
            ),
        },
        PiiKind::GitlabToken => format!("glpat-{}", rng.chars(20, ALNUM)),
        PiiKind::SlackToken => format!(
            "{}-{}-{}-{}",
            rng.pick(&["xoxb", "xoxp"]),
            rng.digits(12),
            rng.digits(13),
            rng.chars(24, ALNUM)
        ),
        PiiKind::PrivateKey => {
            let label = *rng.pick(&[
                "RSA PRIVATE KEY",
                "PRIVATE KEY",
                "EC PRIVATE KEY",
                "OPENSSH PRIVATE KEY",
            ]);
            let body: Vec<String> = (0..3).map(|_| rng.chars(64, ALNUM)).collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----",
                body.join("\n")
            )
        }
        PiiKind::Jwt => {
            let header = b64url_json(r#"{"alg":"HS256","typ":"JWT"}"#);
            let (sub, iat) = (rng.digits(8), rng.digits(10));
            let payload = b64url_json(&format!(r#"{{"sub":"{sub}","iat":{iat}}}"#));
            format!("{header}.{payload}.{}", rng.chars(43, B64URL))
        }
        PiiKind::Secret => {
            let name = *rng.pick(&[
                "password",
                "api_key",
                "SECRET_TOKEN",
                "client_secret",
                "db_passwd",
                "auth_token",
                "apiKey",
            ]);
            let value = format!(
                "{}{}{}",
                rng.chars(6, ALNUM),
                *rng.pick(&["!", "#", "9", "Z"]),
                rng.chars(10, ALNUM)
            );
            let (pre, post) = match rng.below(4) {
                0 => (format!("{name}="), String::new()),
                1 => (format!("{name}: \""), "\"".to_string()),
                2 => (format!("export {name}='"), "'".to_string()),
                _ => (format!("{{\"{name}\": \""), "\"}".to_string()),
            };
            let text = format!("{pre}{value}{post}");
            return Sample {
                expected: vec![(pre.len(), pre.len() + value.len(), kind)],
                text,
            };
        }
    };
    place(rng, &value, Some(kind))
}

/// A near miss: text that looks like data but is not.
fn near_miss(rng: &mut Rng) -> Sample {
    let value = match rng.below(18) {
        0 => {
            // A card-like number whose Luhn digit is wrong.
            let good = luhn_complete(&format!("4{}", rng.digits(14)));
            let last = good
                .chars()
                .last()
                .and_then(|c| c.to_digit(10))
                .unwrap_or(0);
            let bad = format!("{}{}", &good[..15], (last + 1 + rng.below(8) as u32) % 10);
            let sep = rng.pick(&[" ", "-", ""]);
            group(&bad, &[4, 4, 4, 4], sep)
        }
        1 => format!("v{}.{}.{}", rng.below(20), rng.below(40), rng.below(100)),
        2 => format!(
            "version {}.{}.{}-rc.{}",
            rng.below(5),
            rng.below(30),
            rng.below(10),
            rng.below(5)
        ),
        3 => format!(
            "build {}.0.{}.{}",
            100 + rng.below(30),
            1000 + rng.below(9000),
            rng.below(300)
        ),
        4 => format!("2024-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28)),
        5 => format!(
            "{:02}/{:02}/20{:02}",
            1 + rng.below(28),
            1 + rng.below(12),
            rng.below(30)
        ),
        6 => format!(
            "2025-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        7 => format!(
            "{}-{}-4{}-a{}-{}",
            rng.chars(8, HEX),
            rng.chars(4, HEX),
            rng.chars(3, HEX),
            rng.chars(3, HEX),
            rng.chars(12, HEX)
        ),
        8 => format!("commit {}", rng.chars(40, HEX)),
        9 => format!("fixed in {}", rng.chars(7, HEX)),
        10 => format!(
            "{:02}:{:02}:{:02}",
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        11 => format!("max_tokens = {}", rng.below(100_000)),
        12 => format!("order #{} shipped", rng.digits(9)),
        13 => format!("unix time {}", 1_600_000_000 + rng.below(200_000_000)),
        14 => "ISBN 978-3-16-148410-0".to_string(),
        15 => {
            // An IBAN-shaped string with wrong check digits.
            let good = iban_with_check("DE", &rng.digits(18));
            let check: u32 = good[2..4].parse().unwrap_or(0);
            format!(
                "DE{:02}{}",
                (check + 1 + rng.below(50) as u32) % 97 + 2,
                &good[4..]
            )
        }
        16 => format!(
            "{}-{}-{}",
            rng.pick(&["000", "666", "912"]),
            rng.digits(2),
            rng.digits(4)
        ),
        _ => format!(
            "password_min_length = {}; token_count: {}",
            8 + rng.below(20),
            rng.below(5000)
        ),
    };
    place(rng, &value, None)
}

/// `per_kind` positives of every kind and `near_misses` near misses.
pub fn corpus(seed: u64, per_kind: usize, near_misses: usize) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for kind in PiiKind::ALL {
        for _ in 0..per_kind {
            out.push(positive(&mut rng, kind));
        }
    }
    for _ in 0..near_misses {
        out.push(near_miss(&mut rng));
    }
    out
}

/// True positives, false positives and false negatives of one kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(self.tp + self.fp)
        }
    }
    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(self.tp + self.fn_)
        }
    }
}

/// Runs the filter over the corpus: counts per kind and overall, and the
/// samples it got wrong (for messages).
pub fn evaluate(
    redactor: &Redactor,
    samples: &[Sample],
) -> (BTreeMap<PiiKind, Counts>, Counts, Vec<String>) {
    let kinds: BTreeSet<PiiKind> = PiiKind::ALL.into_iter().collect();
    let mut per: BTreeMap<PiiKind, Counts> = BTreeMap::new();
    let mut wrong = Vec::new();
    for s in samples {
        let found = redactor.find(&s.text, &kinds);
        let mut matched = vec![false; s.expected.len()];
        for &(fs, fe, fk) in &found {
            let hit = s
                .expected
                .iter()
                .position(|&(es, ee, ek)| ek == fk && fs < ee && es < fe);
            match hit {
                Some(i) if !matched[i] => {
                    matched[i] = true;
                    per.entry(fk).or_default().tp += 1;
                }
                _ => {
                    per.entry(fk).or_default().fp += 1;
                    wrong.push(format!(
                        "false {}: {:?} in {:?}",
                        fk.tag(),
                        &s.text[fs..fe],
                        s.text
                    ));
                }
            }
        }
        for (i, &(es, ee, ek)) in s.expected.iter().enumerate() {
            if !matched[i] {
                per.entry(ek).or_default().fn_ += 1;
                wrong.push(format!(
                    "missed {}: {:?} in {:?}",
                    ek.tag(),
                    &s.text[es..ee],
                    s.text
                ));
            }
        }
    }
    let mut all = Counts::default();
    for c in per.values() {
        all.tp += c.tp;
        all.fp += c.fp;
        all.fn_ += c.fn_;
    }
    (per, all, wrong)
}
