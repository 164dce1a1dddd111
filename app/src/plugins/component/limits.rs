//! A component's limits, from `[plugins.<name>.sandbox]`: the time one hook
//! call may take and the memory its instance may grow to. The rest of the
//! plugin's table is its own configuration.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// The key of the limits' table inside `[plugins.<name>]`.
const KEY: &str = "sandbox";

/// One plugin's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Per hook call, milliseconds: a call still running then is
    /// interrupted (a busy loop included) and fails with a 504.
    pub time_limit_ms: u64,
    /// The instance's linear memory, MiB: growing past it traps.
    pub memory_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_limit_ms: 1000,
            memory_mib: 64,
        }
    }
}

impl Limits {
    /// The time limit.
    pub fn time(&self) -> Duration {
        Duration::from_millis(self.time_limit_ms)
    }

    /// The memory cap, bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

/// Splits a plugin's table into its limits and its own configuration.
///
/// # Errors
///
/// A `sandbox` table with an unknown key or a wrong type, or a limit of 0.
pub fn split(table: &Value) -> Result<(Limits, Value), String> {
    let mut config = table.clone();
    let sandbox = config
        .as_object_mut()
        .and_then(|t| t.remove(KEY))
        .unwrap_or(Value::Null);
    let limits = if sandbox.is_null() {
        Limits::default()
    } else {
        serde_json::from_value::<Limits>(sandbox)
            .map_err(|e| format!("[plugins.<name>.{KEY}]: {e}"))?
    };
    if limits.time_limit_ms == 0 || limits.memory_mib == 0 {
        return Err(format!(
            "[plugins.<name>.{KEY}]: time_limit_ms and memory_mib must be above 0"
        ));
    }
    if config.is_null() {
        config = Value::Object(Default::default());
    }
    Ok((limits, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_come_out_of_the_table_and_the_rest_is_the_config() {
        let (limits, config) =
            split(&json!({"token": "t", "sandbox": {"time_limit_ms": 50}})).unwrap();
        assert_eq!(
            limits,
            Limits {
                time_limit_ms: 50,
                memory_mib: 64
            }
        );
        assert_eq!(config, json!({"token": "t"}));
        assert_eq!(split(&Value::Null).unwrap(), (Limits::default(), json!({})));
    }

    #[test]
    fn a_wrong_limit_is_refused() {
        let err = split(&json!({"sandbox": {"time_limit": 50}})).unwrap_err();
        assert!(err.contains("unknown field `time_limit`"), "{err}");
        assert!(split(&json!({"sandbox": {"memory_mib": 0}})).is_err());
    }
}
