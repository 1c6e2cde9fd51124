//! The application contexts (`ctx` of the composite scheme) of every internal
//! use of a vigil key. Each use has its own constant, so that a signature made
//! for one purpose never verifies for another. All internal contexts begin
//! with `vigil`; that prefix is reserved, and user namespaces given to
//! `vigil sign` may not start with it (see [`is_reserved_namespace`]).

/// Signatures over tool packages (format version, name, version, hash, key id).
pub const PACKAGE: &[u8] = b"vigil/package/v1";
/// Signatures on ledger checkpoints (C2SP signed notes).
pub const CHECKPOINT: &[u8] = b"vigil/checkpoint/v1";
/// Identity binding of a QUIC link to a composite identity.
pub const LINK_IDENTITY: &[u8] = b"vigil/link-identity/v1";
/// An operator's decision on a held tool call (`vigil approve --key`).
pub const APPROVAL: &[u8] = b"vigil/approval/v1";
/// An operator's request to call a tool (`vigil call --key`).
pub const OPERATOR_CALL: &[u8] = b"vigil/operator-call/v1";

/// A node key handing the log over to its successor (`vigil key rotate`).
pub const KEY_HANDOVER: &[u8] = b"vigil/key-handover/v1";

/// A bearer token this node minted for one of its agents (`vigil agent token`).
pub const AGENT_TOKEN: &[u8] = b"vigil/agent-token/v1";

/// Every internal context, for tests and documentation.
pub const ALL: &[&[u8]] = &[
    PACKAGE,
    CHECKPOINT,
    LINK_IDENTITY,
    APPROVAL,
    OPERATOR_CALL,
    KEY_HANDOVER,
    AGENT_TOKEN,
];

/// The prefix reserved for internal contexts.
pub const RESERVED_PREFIX: &str = "vigil";

/// True when a user-chosen namespace collides with the reserved prefix.
/// The comparison ignores ASCII case so `Vigil/...` is refused too.
pub fn is_reserved_namespace(namespace: &str) -> bool {
    namespace
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_distinct_and_reserved() {
        for (i, a) in ALL.iter().enumerate() {
            let s = std::str::from_utf8(a).expect("contexts are ASCII");
            assert!(is_reserved_namespace(s), "{s} must be reserved");
            for b in &ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    /// docs/key-files.md lists exactly these contexts, each once.
    #[test]
    fn key_files_doc_lists_every_context() {
        let doc = include_str!("../../docs/key-files.md");
        let mut listed: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with('|'))
            .filter_map(|l| {
                l.split('`')
                    .rev()
                    .nth(1)
                    .filter(|c| c.starts_with("vigil/"))
            })
            .collect();
        listed.sort_unstable();
        let mut defined: Vec<&str> = ALL
            .iter()
            .map(|c| std::str::from_utf8(c).expect("ASCII"))
            .collect();
        defined.sort_unstable();
        assert_eq!(listed, defined);
    }

    #[test]
    fn reserved_namespaces() {
        assert!(is_reserved_namespace("vigil"));
        assert!(is_reserved_namespace("VIGIL-x"));
        assert!(is_reserved_namespace("vigil/package/v1"));
        assert!(!is_reserved_namespace("file"));
        assert!(!is_reserved_namespace("vigi"));
        assert!(!is_reserved_namespace(""));
    }
}
