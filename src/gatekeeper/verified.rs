//! The one form in which package code reaches the sandbox: a
//! [`VerifiedPackage`] holds the exact module bytes the gatekeeper hashed
//! and whose signature it verified, with the manifest and summary read from
//! those same bytes. Only the gatekeeper constructs one (in
//! [`Gatekeeper::admit`](super::Gatekeeper::admit) and
//! [`Gatekeeper::recheck`](super::Gatekeeper::recheck)); its fields are
//! private, so no other code can put other bytes in it, and nothing reads
//! the stored file a second time between verification and running.

use std::sync::Arc;

use super::PackageSummary;
use crate::package::Manifest;

/// A package whose bytes passed the gatekeeper: intact, signed by a
/// trusted publisher in scope, and admitted. Cheap to clone (the module is
/// shared).
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    summary: PackageSummary,
    manifest: Manifest,
    module: Arc<[u8]>,
}

impl VerifiedPackage {
    /// Made by the gatekeeper from the bytes it has just verified.
    pub(super) fn new(summary: PackageSummary, manifest: Manifest, module: &[u8]) -> Self {
        Self {
            summary,
            manifest,
            module: Arc::from(module),
        }
    }

    /// Who the package is: name, version, content hash, publisher.
    pub fn summary(&self) -> &PackageSummary {
        &self.summary
    }

    /// The manifest, parsed from the verified bytes.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The WebAssembly module (or component) exactly as verified.
    pub fn module(&self) -> &[u8] {
        &self.module
    }
}
