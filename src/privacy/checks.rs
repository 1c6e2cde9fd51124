//! Checksums and measures that turn a pattern match into a finding: Luhn for
//! card numbers, ISO 13616 mod-97 for IBANs, SSA rules for US SSNs, address
//! parsing for IPs and Shannon entropy for assigned secrets. Plain functions.

/// True when the digits of `s` (separators ignored) pass the Luhn check.
pub fn luhn_ok(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 2 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// True when `s` (spaces ignored) has a card number's length (13 to 19
/// digits), a known issuer prefix and a valid Luhn digit.
pub fn card_ok(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let p2: u32 = digits[..2].parse().unwrap_or(0);
    let p4: u32 = digits[..4].parse().unwrap_or(0);
    let issuer = digits.starts_with('4')
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || p2 == 35
        || p2 == 36
        || p2 == 38
        || p2 == 30
        || p4 == 6011
        || p2 == 65
        || p2 == 62;
    issuer && luhn_ok(&digits)
}

/// True when `s` (spaces ignored) is an IBAN: country code, check digits,
/// 15 to 34 characters, and the ISO 13616 mod-97 remainder is 1.
pub fn iban_ok(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) || !compact.is_ascii() {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        let base = if value >= 10 { 100 } else { 10 };
        remainder = (remainder * base + value) % 97;
    }
    remainder == 1
}

/// True when `area-group-serial` follows the SSA's rules: area not 000,
/// 666 or 900-999, group not 00, serial not 0000.
pub fn ssn_ok(area: &str, group: &str, serial: &str) -> bool {
    let a: u32 = area.parse().unwrap_or(0);
    a != 0 && a != 666 && a < 900 && group != "00" && serial != "0000"
}

/// True when `s` is a dotted-quad IPv4 address.
pub fn ipv4_ok(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
}

/// True when `s` is an IPv6 address with at least two colons.
pub fn ipv6_ok(s: &str) -> bool {
    s.matches(':').count() >= 2 && s.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Shannon entropy of `s` in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

/// True when a value assigned to a secret-looking name looks like a secret:
/// at least 8 characters, not a plain number or word, entropy >= 3 bits.
pub fn secret_value_ok(value: &str) -> bool {
    let len = value.chars().count();
    if len < 8 {
        return false;
    }
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let letters = value.chars().filter(char::is_ascii_alphabetic).count();
    // A plain word ("operation", "Operation") is prose, not a secret: an
    // error message like "passwd: Operation not permitted" must survive.
    let plain_word = letters == len && value.chars().skip(1).all(|c| c.is_ascii_lowercase());
    if digits == len || plain_word {
        return false;
    }
    let redacted = value.starts_with("[REDACTED:");
    !redacted && entropy(value) >= 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_cards() {
        assert!(card_ok("4111 1111 1111 1111"));
        assert!(card_ok("5500-0000-0000-0004"));
        assert!(card_ok("378282246310005"));
        assert!(!card_ok("4111 1111 1111 1112"));
        assert!(!card_ok("1234567890123456"));
    }

    #[test]
    fn plain_words_are_not_secrets() {
        assert!(!secret_value_ok("Operation"));
        assert!(!secret_value_ok("permitted"));
        assert!(secret_value_ok("Xk9#mPq2Lw7z"));
        assert!(secret_value_ok("hunter2Pass!x"));
    }

    #[test]
    fn iban_mod97() {
        assert!(iban_ok("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_ok("DE89370400440532013000"));
        assert!(!iban_ok("DE89370400440532013001"));
    }

    #[test]
    fn ssn_rules_and_ips() {
        assert!(ssn_ok("123", "45", "6789"));
        assert!(!ssn_ok("666", "45", "6789"));
        assert!(!ssn_ok("912", "45", "6789"));
        assert!(ipv4_ok("192.168.1.20") && !ipv4_ok("300.1.1.1"));
        assert!(ipv6_ok("2001:db8::1") && !ipv6_ok("12:30:45"));
    }

    #[test]
    fn entropy_separates_secrets_from_words() {
        assert!(secret_value_ok("x9F2kLq8ZpR4vB7n"));
        assert!(!secret_value_ok("4096"));
        assert!(!secret_value_ok("changeme"));
    }
}
