//! Naming rules of admission: package names are lowercase ASCII
//! `publisher/name`, and a new name must not be confusable with a name
//! admitted before: not the same UTS #39 skeleton (`acme/wеather` with a
//! Cyrillic `е`, `rn` for `m`), and not one edit away from another
//! publisher's name.

use unicode_security::skeleton;

/// Checks that `name` is `publisher/name` in lowercase ASCII letters,
/// digits, `-` and `_`, each part starting with a letter or digit.
pub fn check_syntax(name: &str) -> Result<(), String> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '/')))
    {
        return Err(format!(
            "it contains {} (U+{:04X}); package names are lowercase ASCII letters, digits, `-` and `_`",
            if c.is_control() || super::poisoning::is_invisible(c) {
                "an invisible character".to_string()
            } else {
                format!("`{c}`")
            },
            c as u32
        ));
    }
    let mut parts = name.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(n), None)
            if [p, n]
                .iter()
                .all(|s| s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())) =>
        {
            Ok(())
        }
        _ => Err("it must be `publisher/name`, each part starting with a letter or digit".into()),
    }
}

/// The UTS #39 skeleton of a name.
pub fn name_skeleton(name: &str) -> String {
    skeleton(name).collect()
}

/// True when `a` and `b` differ by exactly one inserted, deleted or
/// substituted character.
pub fn edit_distance_is_one(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    match long.len() - short.len() {
        0 => {
            short
                .iter()
                .zip(long.iter())
                .filter(|(x, y)| x != y)
                .count()
                == 1
        }
        1 => {
            let prefix = short
                .iter()
                .zip(long.iter())
                .take_while(|(x, y)| x == y)
                .count();
            short[prefix..] == long[prefix + 1..]
        }
        _ => false,
    }
}

/// Why two names are confusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confusion {
    /// Same UTS #39 skeleton.
    SameSkeleton { skeleton: String },
    /// One edit apart and published by another key.
    OneEditFromOtherPublisher { publisher: String },
}

impl std::fmt::Display for Confusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SameSkeleton { skeleton } => write!(
                f,
                "both look like `{skeleton}` (same Unicode UTS #39 confusable skeleton)"
            ),
            Self::OneEditFromOtherPublisher { publisher } => write!(
                f,
                "one character away from a name published by another key ({publisher})"
            ),
        }
    }
}

/// Compares `name` (signed by `publisher`) with every admitted
/// `(name, publisher)`; the first confusable one is returned.
pub fn find_confusable<'a>(
    name: &str,
    publisher: &str,
    admitted: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(String, Confusion)> {
    let sk = name_skeleton(name);
    for (other, other_publisher) in admitted {
        if other == name {
            continue;
        }
        if name_skeleton(other) == sk {
            return Some((other.to_string(), Confusion::SameSkeleton { skeleton: sk }));
        }
        if other_publisher != publisher && edit_distance_is_one(name, other) {
            return Some((
                other.to_string(),
                Confusion::OneEditFromOtherPublisher {
                    publisher: other_publisher.to_string(),
                },
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        check_syntax("acme/weather-2").expect("ok");
        for bad in [
            "Acme/x",
            "acme/wе",
            "acme",
            "acme/-x",
            "a/b/c",
            "acme/x\u{200b}",
            "/x",
        ] {
            assert!(check_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn skeletons_catch_cyrillic_and_rn() {
        assert_eq!(
            name_skeleton("acme/w\u{0435}ather"),
            name_skeleton("acme/weather")
        );
        assert_eq!(name_skeleton("acme/rnail"), name_skeleton("acme/mail"));
        assert_ne!(name_skeleton("acme/mail"), name_skeleton("acme/nail"));
    }

    #[test]
    fn edit_distance() {
        assert!(edit_distance_is_one("acme/mail", "acme/maii"));
        assert!(edit_distance_is_one("acme/mail", "acme/mails"));
        assert!(edit_distance_is_one("acme/mail", "acme/mal"));
        assert!(!edit_distance_is_one("acme/mail", "acme/mail"));
        assert!(!edit_distance_is_one("acme/mail", "acme/mila"));
    }

    #[test]
    fn confusables() {
        let admitted = [("acme/mail", "k1")];
        assert!(find_confusable("acme/rnail", "k1", admitted).is_some());
        assert!(find_confusable("acme/mails", "k2", admitted).is_some());
        assert!(find_confusable("acme/mails", "k1", admitted).is_none());
        assert!(find_confusable("acme/mail", "k2", admitted).is_none());
        assert!(find_confusable("acme/weather", "k2", admitted).is_none());
    }
}
