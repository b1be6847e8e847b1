//! [`ServeConfig`]: where to listen and the request limits.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::error::ServeError;

/// Configuration of the HTTP API. Deserialises from e.g. a `[serve]` TOML table; every field
/// has a default and unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on, e.g. `"0.0.0.0:8080"`. Default `127.0.0.1:8080`; port 0 picks a
    /// free port (the chosen address is logged).
    pub addr: SocketAddr,
    /// Largest request body accepted, in bytes; larger bodies get 413. Default 8 MiB.
    pub max_body_bytes: usize,
    /// Most entities in one `POST /v1/features`; more get 400. Default 1000.
    pub max_batch_entities: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            max_body_bytes: 8 * 1024 * 1024,
            max_batch_entities: 1000,
        }
    }
}

impl ServeConfig {
    /// Checks the limits: both must be positive.
    pub fn validate(&self) -> Result<(), ServeError> {
        if self.max_body_bytes == 0 {
            return Err(ServeError::InvalidConfig {
                field: "max_body_bytes",
                detail: "must be at least 1 (the default is 8388608, 8 MiB)",
            });
        }
        if self.max_batch_entities == 0 {
            return Err(ServeError::InvalidConfig {
                field: "max_batch_entities",
                detail: "must be at least 1 (the default is 1000)",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_json() {
        let c: ServeConfig = serde_json::from_str(r#"{"addr":"0.0.0.0:9000"}"#).unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(c.max_batch_entities, 1000);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_key_and_zero_limits_are_rejected() {
        assert!(serde_json::from_str::<ServeConfig>(r#"{"max_body":1}"#).is_err());
        let c = ServeConfig {
            max_batch_entities: 0,
            ..ServeConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("max_batch_entities"), "{err}");
    }
}
