//! The catalog: every tool of every admitted package, loaded into the
//! sandbox once and ready to call, with its schemas compiled. Built at node
//! start from the package store (stored packages are re-verified first, as
//! `vigil tools` does); only admitted packages reach it, and each is loaded
//! from the very bytes the gatekeeper verified.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::gatekeeper::store::{PackageStore, StoredCheck};
use crate::gatekeeper::Decision;
use crate::node::config::Config;
use crate::node::home::Home;
use crate::package::manifest::{Sensitivity, ToolSpec};
use crate::policy::SchemaCheck;
use crate::sandbox::{LoadedTool, Sandbox};
use crate::trust::TrustStore;

/// Why the catalog could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot open the package store: {0}")]
    Store(String),
    #[error("cannot read the trust store: {0}")]
    Trust(String),
    #[error("package {package}: {message}")]
    Package { package: String, message: String },
    #[error(
        "tool `{tool}` is provided by two admitted packages ({first} and {second}); remove one"
    )]
    Duplicate {
        tool: String,
        first: String,
        second: String,
    },
}

/// One callable tool.
pub struct CatalogTool {
    pub spec: ToolSpec,
    /// `name@version` of the package providing it.
    pub package: String,
    pub loaded: Arc<LoadedTool>,
    pub input: SchemaCheck,
    pub output: Option<Arc<SchemaCheck>>,
}

impl std::fmt::Debug for CatalogTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CatalogTool({} from {})", self.spec.name, self.package)
    }
}

impl CatalogTool {
    /// A tool from its spec and a loaded package; fails on a bad schema.
    pub fn new(
        spec: ToolSpec,
        package: String,
        loaded: Arc<LoadedTool>,
    ) -> Result<Self, CatalogError> {
        let bad = |which: &str, e: String| CatalogError::Package {
            package: package.clone(),
            message: format!(
                "tool `{}`: {which} is not a usable JSON Schema: {e}",
                spec.name
            ),
        };
        let input = SchemaCheck::new(&spec.input_schema).map_err(|e| bad("input_schema", e))?;
        let output = match &spec.output_schema {
            Some(s) => Some(Arc::new(
                SchemaCheck::new(s).map_err(|e| bad("output_schema", e))?,
            )),
            None => None,
        };
        Ok(Self {
            spec,
            package,
            loaded,
            input,
            output,
        })
    }

    /// True when each call needs a human approval.
    pub fn needs_approval(&self) -> bool {
        self.spec.sensitivity == Sensitivity::High
    }
}

/// The admitted tools by name.
#[derive(Debug, Default)]
pub struct Catalog {
    tools: BTreeMap<String, Arc<CatalogTool>>,
}

impl Catalog {
    /// A catalog of the given tools.
    pub fn from_tools(tools: impl IntoIterator<Item = CatalogTool>) -> Result<Self, CatalogError> {
        let mut map: BTreeMap<String, Arc<CatalogTool>> = BTreeMap::new();
        for tool in tools {
            if let Some(first) = map.get(&tool.spec.name) {
                return Err(CatalogError::Duplicate {
                    tool: tool.spec.name.clone(),
                    first: first.package.clone(),
                    second: tool.package,
                });
            }
            map.insert(tool.spec.name.clone(), Arc::new(tool));
        }
        Ok(Self { tools: map })
    }

    /// Loads every tool of every admitted package of `home` into `sandbox`,
    /// judged by `trust` (the checked store, see [`crate::node::trusted`]).
    /// Packages that no longer verify are skipped; their refusals are
    /// returned, for the caller to record and report.
    pub fn load(
        home: &Home,
        config: &Config,
        sandbox: &Sandbox,
        trust: &TrustStore,
    ) -> Result<(Self, Vec<StoredCheck>), CatalogError> {
        let max = config.packages.max_package_bytes;
        let store = PackageStore::open(home).map_err(|e| CatalogError::Store(e.to_string()))?;
        let mut tools = Vec::new();
        let mut skipped = Vec::new();
        for check in store.verify_stored(trust, max) {
            let Decision::Admitted(admitted) = &check.decision else {
                skipped.push(check);
                continue;
            };
            let label = format!(
                "{}@{}",
                admitted.package().name,
                admitted.manifest().package.version
            );
            let fail = |message: String| CatalogError::Package {
                package: label.clone(),
                message,
            };
            // The bytes the gatekeeper just verified, not a second read.
            let loaded = sandbox
                .load(&admitted.verified)
                .map_err(|e| fail(e.to_string()))?;
            let loaded = Arc::new(loaded);
            for spec in &admitted.manifest().tools {
                tools.push(CatalogTool::new(
                    spec.clone(),
                    label.clone(),
                    Arc::clone(&loaded),
                )?);
            }
        }
        Ok((Self::from_tools(tools)?, skipped))
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<CatalogTool>> {
        self.tools.get(name)
    }

    /// Every tool, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CatalogTool>> {
        self.tools.values()
    }
}
