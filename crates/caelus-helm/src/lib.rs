//! Caelus's Helm engine: Helm's own template engine (`libhelm_c`, a C ABI
//! over Helm v4's Go SDK) loaded at run time, charts pulled by manifest
//! digest from OCI registries into a content-addressed cache, rendering
//! into labelled, ordered objects, hooks and CRDs.
//!
//! Start with [`HelmEngine::load`]. All `unsafe` code of Caelus lives in
//! the private `ffi` module of this crate.

mod chart;
pub mod checked;
mod engine;
mod error;
mod ffi;
pub mod local_registry;
mod lru;
pub mod order;
mod reference;
mod registry;
pub mod render;
mod store;
#[cfg(feature = "test-support")]
pub mod testing;

pub use chart::{Chart, ChartInfo, LintMessage, LintReport};
pub use checked::{CheckedRender, RevisionPolicy};
pub use engine::{
    CacheStats, DEFAULT_LIBRARY_RELATIVE, EngineConfig, HelmEngine, InspectedChart, LIBRARY_ENV,
    LibraryLoading, RenderLimits, ResolvedChart, locate_library,
};
pub use error::{ErrorCode, HelmError, INSTALL_COMMAND};
pub use ffi::{EXPECTED_HELM_C_VERSION, EXPECTED_HELM_SDK_VERSION, HelmLibrary};
pub use reference::{ChartReference, Digest};
pub use registry::{Credentials, RegistrySettings};
pub use render::{
    Hook, HookDeletePolicy, HookEvent, LookupCluster, RenderRequest, Rendered, RevisionKind,
};
pub use store::ChartStore;
