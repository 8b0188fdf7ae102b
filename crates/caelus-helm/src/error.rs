//! Typed errors for everything the Helm layer can report.
//!
//! libhelm_c reports failures as an integer code plus free text. The code
//! tells us the broad area (registry, chart load, values, ...); for the cases
//! callers must tell apart (not found, registry down, digest mismatch) we
//! also look at the text, because Helm reports all of those with the same
//! code.

use std::path::PathBuf;

/// The command that installs the library; named in "library missing" errors.
pub const INSTALL_COMMAND: &str = "scripts/install-helm-lib";

/// `helm_error_code` from libhelm_c (append-only upstream, never renumbered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Unknown,
    InvalidArg,
    InvalidHandle,
    WrongHandleType,
    Panic,
    Cancelled,
    NotFound,
    Io,
    ChartLoad,
    ChartInvalid,
    Values,
    Render,
    Registry,
    Repo,
    Kube,
    Storage,
    Release,
    /// A code this binding does not know (a newer library).
    Other(i32),
}

impl ErrorCode {
    pub fn from_raw(code: i32) -> Self {
        match code {
            -1 => Self::Unknown,
            -2 => Self::InvalidArg,
            -3 => Self::InvalidHandle,
            -4 => Self::WrongHandleType,
            -5 => Self::Panic,
            -6 => Self::Cancelled,
            -7 => Self::NotFound,
            -8 => Self::Io,
            -20 => Self::ChartLoad,
            -21 => Self::ChartInvalid,
            -22 => Self::Values,
            -23 => Self::Render,
            -40 => Self::Registry,
            -41 => Self::Repo,
            -60 => Self::Kube,
            -61 => Self::Storage,
            -62 => Self::Release,
            other => Self::Other(other),
        }
    }
}

/// Everything that can go wrong in `caelus-helm`.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error(
        "Helm library not found: looked for {path}; install it with `{INSTALL_COMMAND}` \
         (or set CAELUS_HELM_LIB to its path)"
    )]
    LibraryMissing { path: PathBuf },

    #[error("could not load the Helm library {path}: {message}")]
    LibraryLoad { path: PathBuf, message: String },

    #[error(
        "Helm library {path} is libhelm_c {found_c} (Helm {found_sdk}), but Caelus needs \
         libhelm_c {expected_c} (Helm {expected_sdk}); reinstall it with `{INSTALL_COMMAND}`"
    )]
    VersionMismatch {
        path: PathBuf,
        found_c: String,
        found_sdk: String,
        expected_c: &'static str,
        expected_sdk: &'static str,
    },

    #[error("invalid chart reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    /// The tag, digest or repository does not exist in the registry.
    #[error("chart {reference} not found in the registry: {message}")]
    NotFound { reference: String, message: String },

    /// The registry could not be reached (connection refused, DNS, timeout).
    #[error("registry {registry} is unreachable: {message}")]
    RegistryUnreachable { registry: String, message: String },

    /// The registry refused our credentials (or wanted some).
    #[error("registry {registry} refused access: {message}")]
    Unauthorized { registry: String, message: String },

    /// The registry served content that does not match the requested digest.
    #[error("chart {reference} failed digest verification: {message}")]
    DigestMismatch { reference: String, message: String },

    /// Any other registry failure (auth, protocol).
    #[error("registry error for {reference}: {message}")]
    Registry { reference: String, message: String },

    #[error("chart could not be loaded: {message}")]
    ChartLoad { message: String },

    /// The chart loaded but is not valid (lint errors, bad metadata).
    #[error("chart is invalid: {message}")]
    ChartInvalid { message: String },

    /// Values were malformed or failed the chart's JSON schema; `message`
    /// is Helm's, which names the path at fault.
    #[error("invalid values: {message}")]
    InvalidValues { message: String },

    #[error("rendering failed: {message}")]
    Render { message: String },

    /// A render went past one of its bounds (time, output bytes, object
    /// count); `limit` names the bound and its configured value.
    #[error("rendering refused: {message} (limit: {limit})")]
    RenderLimit { limit: String, message: String },

    /// A rendered template produced a document we cannot use.
    #[error("template {template} produced an invalid document: {message}")]
    BadManifest { template: String, message: String },

    /// Any other failure reported by libhelm_c.
    #[error("Helm {op} failed ({code:?}): {message}")]
    Library {
        op: &'static str,
        code: ErrorCode,
        message: String,
    },

    /// libhelm_c returned output this binding could not decode.
    #[error("unexpected output from Helm {op}: {message}")]
    Output { op: &'static str, message: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The blocking pool was shut down or a blocking task panicked.
    #[error("Helm worker failed: {0}")]
    Worker(String),
}

impl HelmError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether a later attempt may succeed unchanged (registry unreachable, a
    /// worker hiccup) or fails the same way until something changes.
    pub fn failure_class(&self) -> caelus_core::remediation::FailureClass {
        use caelus_core::remediation::FailureClass;
        match self {
            Self::RegistryUnreachable { .. } | Self::Worker(_) | Self::Io { .. } => {
                FailureClass::Transient
            }
            _ => FailureClass::Deterministic,
        }
    }

    /// What the failure means for a deploy: a render refused for these values
    /// needs a change; a chart that cannot be fetched is the registry's problem.
    pub fn failure_kind(&self) -> caelus_core::remediation::FailureKind {
        use caelus_core::remediation::FailureKind;
        match self {
            Self::Render { .. }
            | Self::RenderLimit { .. }
            | Self::BadManifest { .. }
            | Self::InvalidValues { .. } => FailureKind::NeedsChange,
            _ => FailureKind::Api,
        }
    }

    /// True when the caller's input is at fault (a 4xx for an API), false
    /// when the registry, library or machine is (a 5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidReference { .. }
                | Self::NotFound { .. }
                | Self::ChartLoad { .. }
                | Self::ChartInvalid { .. }
                | Self::InvalidValues { .. }
                | Self::Render { .. }
                | Self::RenderLimit { .. }
                | Self::BadManifest { .. }
        )
    }
}

/// A raw failure from one libhelm_c call, before it is given meaning.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    pub op: &'static str,
    pub code: ErrorCode,
    pub message: String,
}

impl CallError {
    /// Generic mapping by code, for calls that are not registry operations.
    pub fn into_helm(self) -> HelmError {
        match self.code {
            ErrorCode::ChartLoad => HelmError::ChartLoad {
                message: self.message,
            },
            ErrorCode::ChartInvalid => HelmError::ChartInvalid {
                message: self.message,
            },
            ErrorCode::Values => HelmError::InvalidValues {
                message: self.message,
            },
            ErrorCode::Render => HelmError::Render {
                message: self.message,
            },
            code => HelmError::Library {
                op: self.op,
                code,
                message: self.message,
            },
        }
    }

    /// Mapping for registry operations: Helm reports "not found", "connection
    /// refused" and "digest mismatch" all as registry/repo errors, so the
    /// text decides which one it was.
    pub fn into_registry(self, registry: &str, reference: &str) -> HelmError {
        let lower = self.message.to_ascii_lowercase();
        let reference = reference.to_string();
        if lower.contains("mismatched digest") || lower.contains("digest mismatch") {
            HelmError::DigestMismatch {
                reference,
                message: self.message,
            }
        } else if lower.contains("connection refused")
            || lower.contains("no such host")
            || lower.contains("i/o timeout")
            || lower.contains("connection reset")
            || lower.contains("network is unreachable")
            || lower.contains("dial tcp")
        {
            HelmError::RegistryUnreachable {
                registry: registry.to_string(),
                message: self.message,
            }
        } else if lower.contains("credential")
            || lower.contains("unauthorized")
            || lower.contains("authentication required")
            || lower.contains("denied")
        {
            // Checked before "not found": "basic credential not found" is
            // an auth failure, not a missing chart.
            HelmError::Unauthorized {
                registry: registry.to_string(),
                message: self.message,
            }
        } else if lower.contains("not found") || lower.contains("name unknown") {
            HelmError::NotFound {
                reference,
                message: self.message,
            }
        } else if matches!(self.code, ErrorCode::Registry | ErrorCode::Repo) {
            HelmError::Registry {
                reference,
                message: self.message,
            }
        } else {
            self.into_helm()
        }
    }
}
