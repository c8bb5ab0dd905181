//! Loading and validation.

use std::collections::HashMap;
use std::path::Path;

use crate::Settings;

/// A configuration that cannot be used. `Display` names the key and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not TOML.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A key that does not exist.
    #[error("unknown configuration key `{key}`")]
    UnknownKey {
        /// Dotted key, e.g. `c2s.bogus`.
        key: String,
    },
    /// A key whose value is wrong.
    #[error("invalid value for `{key}`: {reason}")]
    InvalidValue {
        /// Dotted key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Defaults, then `file` (if any), then `CORVID__SECTION__KEY` variables from `env`; then
/// validation. `env` is passed in (not read here) so tests need not touch the process environment.
pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    todo!()
}

impl Settings {
    /// Checks every value; the first bad one is reported with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        todo!()
    }
}
