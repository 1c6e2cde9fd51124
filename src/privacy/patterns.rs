//! The patterns of the privacy filter and the [`Redactor`] that applies them:
//! each kind has a regular expression that proposes candidates and a check
//! that confirms them; confirmed findings are replaced, the most specific
//! kind winning where two overlap.

use std::collections::BTreeSet;

use regex::{Captures, Regex};
use serde_json::Value;

use super::checks;
use super::{PiiKind, Redactions};

/// A byte range of the text and the kind found there.
type Span = (usize, usize, PiiKind);

/// The compiled patterns. Build once ([`Redactor::new`]) and share.
#[derive(Debug, Clone)]
pub struct Redactor {
    private_key: Regex,
    jwt: Regex,
    aws: Regex,
    github: Regex,
    gitlab: Regex,
    slack: Regex,
    assigned: Regex,
    secret_name: Regex,
    email: Regex,
    iban: Regex,
    card: Regex,
    ssn: Regex,
    ipv6: Regex,
    ipv4: Regex,
    phone_intl: Regex,
    phone_us: Regex,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this module, covered by its tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("privacy pattern {pattern:?}: {e}"))
}

const SECRET_NAME: &str = r"(?i)(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|passphrase|access[_-]?key|private[_-]?key|credentials?|authorization|auth[_-]?key|\bkey)";

impl Redactor {
    /// Compiles the patterns.
    pub fn new() -> Self {
        Self {
            private_key: re(
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            ),
            jwt: re(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
            aws: re(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
            github: re(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
            gitlab: re(r"\bgl(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat)-[A-Za-z0-9_-]{20,}"),
            slack: re(r"\b(?:xox[abposr]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,})"),
            assigned: re(&format!(
                r#"(?i)[A-Za-z0-9_.-]*{SECRET_NAME}[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?(?:bearer\s+|basic\s+)?([^\s"',;{{}}()\[\]<>]+)"#
            )),
            secret_name: re(&format!(r"^[A-Za-z0-9_.-]*{SECRET_NAME}[A-Za-z0-9_.-]*$")),
            email: re(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
            iban: re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
            card: re(r"\b\d(?:[ -]?\d){12,18}\b"),
            ssn: re(r"\b(\d{3})([- ])(\d{2})([- ])(\d{4})\b"),
            ipv6: re(r"[0-9A-Fa-f:]{2,}[0-9A-Fa-f]"),
            ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
            phone_intl: re(r"\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}"),
            phone_us: re(r"(?:\(\d{3}\) ?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b"),
        }
    }

    /// Replaces every finding of `kinds` in `text` with its placeholder.
    pub fn redact_text(&self, text: &str, kinds: &BTreeSet<PiiKind>) -> (String, Redactions) {
        let mut counts = Redactions::default();
        if kinds.is_empty() || text.is_empty() {
            return (text.to_string(), counts);
        }
        let spans = self.find(text, kinds);
        if spans.is_empty() {
            return (text.to_string(), counts);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, kind) in spans {
            out.push_str(&text[at..start]);
            out.push_str(&kind.placeholder());
            counts.add(kind);
            at = end;
        }
        out.push_str(&text[at..]);
        (out, counts)
    }

    /// Redacts every string of `value` in place (object keys are kept; a
    /// string assigned to a secret-looking key is checked as a secret).
    pub fn redact_json(&self, value: &mut Value, kinds: &BTreeSet<PiiKind>) -> Redactions {
        let mut counts = Redactions::default();
        if !kinds.is_empty() {
            self.walk(value, None, kinds, &mut counts);
        }
        counts
    }

    fn walk(
        &self,
        value: &mut Value,
        key: Option<&str>,
        kinds: &BTreeSet<PiiKind>,
        counts: &mut Redactions,
    ) {
        match value {
            Value::String(s) => {
                let (text, found) = self.redact_text(s, kinds);
                if found.total() > 0 {
                    *s = text;
                    counts.merge(&found);
                } else if kinds.contains(&PiiKind::Secret)
                    && key.is_some_and(|k| self.secret_name.is_match(k))
                    && checks::secret_value_ok(s)
                    && !s.contains(char::is_whitespace)
                {
                    *s = PiiKind::Secret.placeholder();
                    counts.add(PiiKind::Secret);
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| self.walk(v, None, kinds, counts)),
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    self.walk(v, Some(k), kinds, counts);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// The confirmed findings of `kinds` in `text`, sorted, not overlapping
    /// (earlier kinds of [`PiiKind::ALL`] win). The taken spans are kept by
    /// start: as they never overlap, a candidate overlaps one of them
    /// exactly when it overlaps the last one starting before its end, so
    /// each candidate costs one ordered lookup (linear in the matches, not
    /// quadratic).
    pub fn find(&self, text: &str, kinds: &BTreeSet<PiiKind>) -> Vec<Span> {
        let mut taken: std::collections::BTreeMap<usize, (usize, PiiKind)> =
            std::collections::BTreeMap::new();
        for kind in PiiKind::ALL {
            if !kinds.contains(&kind) {
                continue;
            }
            for (start, end) in self.candidates(kind, text) {
                let overlaps = taken
                    .range(..end)
                    .next_back()
                    .is_some_and(|(_, &(e, _))| e > start);
                if !overlaps {
                    taken.insert(start, (end, kind));
                }
            }
        }
        taken.into_iter().map(|(s, (e, k))| (s, e, k)).collect()
    }

    fn candidates(&self, kind: PiiKind, text: &str) -> Vec<(usize, usize)> {
        let all = |r: &Regex| {
            r.find_iter(text)
                .map(|m| (m.start(), m.end()))
                .collect::<Vec<_>>()
        };
        match kind {
            PiiKind::PrivateKey => all(&self.private_key),
            PiiKind::Jwt => all(&self.jwt),
            PiiKind::AwsAccessKey => all(&self.aws),
            PiiKind::GithubToken => all(&self.github),
            PiiKind::GitlabToken => all(&self.gitlab),
            PiiKind::SlackToken => all(&self.slack),
            PiiKind::Email => all(&self.email),
            PiiKind::Secret => self
                .assigned
                .captures_iter(text)
                .filter_map(|c: Captures<'_>| c.get(1))
                .filter(|m| checks::secret_value_ok(m.as_str()))
                .map(|m| (m.start(), m.end()))
                .collect(),
            PiiKind::Iban => shrink_groups(text, all(&self.iban), checks::iban_ok),
            PiiKind::CreditCard => shrink_groups(text, all(&self.card), checks::card_ok),
            PiiKind::Ssn => self
                .ssn
                .captures_iter(text)
                .filter(|c| c[2] == c[4] && checks::ssn_ok(&c[1], &c[3], &c[5]))
                .filter_map(|c| c.get(0))
                .filter(|m| isolated(text, m.start(), m.end(), |c| c.is_ascii_digit() || c == '-'))
                .map(|m| (m.start(), m.end()))
                .collect(),
            PiiKind::Ipv6 => all(&self.ipv6)
                .into_iter()
                .filter(|&(s, e)| {
                    checks::ipv6_ok(&text[s..e])
                        && isolated(text, s, e, |c| {
                            c.is_ascii_alphanumeric() || c == ':' || c == '.'
                        })
                })
                .collect(),
            PiiKind::Ipv4 => all(&self.ipv4)
                .into_iter()
                .filter(|&(s, e)| {
                    checks::ipv4_ok(&text[s..e])
                        && isolated(text, s, e, |c| c.is_ascii_digit() || c == '.')
                })
                .collect(),
            PiiKind::Phone => {
                let mut found: Vec<(usize, usize)> = all(&self.phone_intl)
                    .into_iter()
                    .map(|(s, e)| (s, trim_phone_end(text, s, e)))
                    .filter(|&(s, e)| (8..=15).contains(&digit_count(&text[s..e])))
                    .collect();
                found.extend(all(&self.phone_us));
                found.retain(|&(s, e)| {
                    isolated(text, s, e, |c| {
                        c.is_ascii_alphanumeric() || c == '-' || c == '.'
                    })
                });
                found
            }
        }
    }
}

fn digit_count(s: &str) -> usize {
    s.chars().filter(char::is_ascii_digit).count()
}

/// Drops a trailing `)`-less remainder: the match ends on a digit or `)`.
fn trim_phone_end(text: &str, start: usize, mut end: usize) -> usize {
    while end > start && !text[..end].ends_with(|c: char| c.is_ascii_digit()) {
        end -= 1;
    }
    end
}

/// True when the characters just before `start` and just after `end` are
/// not ones that would make the match part of a longer token.
fn isolated(text: &str, start: usize, end: usize, joins: impl Fn(char) -> bool) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let after_joins = match after {
        // A sentence may end right after the finding ("... 10.0.0.1.").
        Some('.') | Some('-') => text[end + 1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric()),
        Some(c) => joins(c),
        None => false,
    };
    !before.is_some_and(&joins) && !after_joins
}

/// Confirms grouped candidates, dropping trailing groups (a following word
/// or number swallowed by the pattern) until the check passes.
fn shrink_groups(
    text: &str,
    found: Vec<(usize, usize)>,
    ok: impl Fn(&str) -> bool,
) -> Vec<(usize, usize)> {
    found
        .into_iter()
        .filter_map(|(s, mut e)| loop {
            if ok(&text[s..e]) {
                return Some((s, e));
            }
            let cut = text[s..e].rfind([' ', '-'])?;
            e = s + cut;
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        let kinds = PiiKind::ALL.into_iter().collect();
        Redactor::new().redact_text(text, &kinds).0
    }

    /// The overlap rule of `find`, checked the slow way: every candidate
    /// against every span taken before it.
    fn find_quadratic(r: &Redactor, text: &str, kinds: &BTreeSet<PiiKind>) -> Vec<Span> {
        let mut taken: Vec<Span> = Vec::new();
        for kind in PiiKind::ALL {
            if kinds.contains(&kind) {
                for (start, end) in r.candidates(kind, text) {
                    if !taken.iter().any(|&(s, e, _)| start < e && s < end) {
                        taken.push((start, end, kind));
                    }
                }
            }
        }
        taken.sort_unstable_by_key(|s| s.0);
        taken
    }

    #[test]
    fn ordered_overlap_check_takes_the_same_spans_as_checking_every_pair() {
        let r = Redactor::new();
        let kinds: BTreeSet<PiiKind> = PiiKind::ALL.into_iter().collect();
        // Kinds that overlap one another: a JWT holding an email-like part,
        // an IBAN whose digits read as a phone and a card, IPs in URLs,
        // secrets assigned to names, repeated many times in varied order.
        let pieces = [
            "a@b.co ",
            "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhQGIuY28ifQ.c2lnbmF0dXJlX3ZhbHVl ",
            "DE89 3704 0044 0532 0130 00 ",
            "+49 30 1234567 ",
            "4111-1111-1111-1111 ",
            "http://10.0.0.1:8080/x ",
            "fe80::1 ",
            "password: \"hunter2hunter2XYZ\" ",
            "123-45-6789 ",
            "AKIAIOSFODNN7EXAMPLE ",
        ];
        let mut text = String::new();
        for i in 0..400 {
            text.push_str(pieces[(i * 7 + i / 3) % pieces.len()]);
        }
        let fast = r.find(&text, &kinds);
        assert_eq!(fast, find_quadratic(&r, &text, &kinds));
        assert!(fast.len() >= 300, "{} findings", fast.len());
        assert!(
            fast.windows(2).all(|w| w[0].1 <= w[1].0),
            "sorted, disjoint"
        );
    }

    #[test]
    fn typed_placeholders() {
        assert_eq!(
            redact("mail alice@example.com now"),
            "mail [REDACTED:EMAIL] now"
        );
        assert_eq!(
            redact("card 4111 1111 1111 1111."),
            "card [REDACTED:CREDIT_CARD]."
        );
        assert_eq!(redact("ssn 123-45-6789"), "ssn [REDACTED:SSN]");
        assert_eq!(
            redact("host 10.1.2.3 and 2001:db8::1"),
            "host [REDACTED:IPV4] and [REDACTED:IPV6]"
        );
        assert_eq!(redact("call +44 20 7946 0958"), "call [REDACTED:PHONE]");
        assert_eq!(redact("call (415) 555-2671"), "call [REDACTED:PHONE]");
        assert_eq!(
            redact("IBAN DE89 3704 0044 0532 0130 00 EUR"),
            "IBAN [REDACTED:IBAN] EUR"
        );
        assert_eq!(redact("AKIAIOSFODNN7EXAMPLE"), "[REDACTED:AWS_ACCESS_KEY]");
        assert_eq!(
            redact("password=x9F2kLq8ZpR4vB7n"),
            "password=[REDACTED:SECRET]"
        );
    }

    #[test]
    fn near_misses_stay() {
        for s in [
            "4111 1111 1111 1112",
            "version 1.24.3",
            "2024-01-15",
            "550e8400-e29b-41d4-a716-446655440000",
            "commit 3f786850e387550fdab836ed7e6dc881de23001b",
            "max_tokens = 4096",
            "12:30:45",
        ] {
            assert_eq!(redact(s), s);
        }
    }

    #[test]
    fn json_is_redacted_recursively_and_secret_keys_are_checked() {
        let mut v = serde_json::json!({"a": ["bob@example.org", {"api_key": "Zx81kQp02LmNa7Rt"}], "n": 5, "name": "Bob"});
        let kinds = PiiKind::ALL.into_iter().collect();
        let counts = Redactor::new().redact_json(&mut v, &kinds);
        assert_eq!(v["a"][0], "[REDACTED:EMAIL]");
        assert_eq!(v["a"][1]["api_key"], "[REDACTED:SECRET]");
        assert_eq!(v["name"], "Bob");
        assert_eq!(counts.total(), 2);
    }
}
