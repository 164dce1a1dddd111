//! A component's limits, from `[plugins.<name>.sandbox]`: the time one hook
//! call may take, the memory an instance may grow to, how many warm
//! instances are kept, and the hosts its after-commit hooks may send HTTP
//! requests to. The rest of the plugin's table is its own
//! configuration.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use wasmtime::ResourceLimiter;

/// The key of the limits' table inside `[plugins.<name>]`.
const KEY: &str = "sandbox";

/// One plugin's limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Per hook call, milliseconds: a call still running then is
    /// interrupted (a busy loop included) and fails with a 504.
    pub time_limit_ms: u64,
    /// An instance's memory, MiB: all its linear memories and tables
    /// together (a component holds several); growing past it traps.
    pub memory_mib: u64,
    /// Instances kept warm between calls (0: a fresh instance per call).
    pub warm_instances: usize,
    /// The hosts (`host` or `host:port`, as a URL names them) its
    /// after-commit hooks may send HTTP(S) requests to (none by default;
    /// see `outbound`).
    pub hosts: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_limit_ms: 1000,
            memory_mib: 64,
            warm_instances: 4,
            hosts: Vec::new(),
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

/// The bytes Wasmtime takes per table element (a pointer), counted
/// against the cap as memory is.
const TABLE_ELEMENT: usize = std::mem::size_of::<usize>();

/// One instance's memory budget: what its memories and tables hold, summed,
/// against the plugin's cap. Wasmtime's own `StoreLimits` bounds each
/// memory alone, which lets a component with several reach a multiple of
/// the cap.
#[derive(Debug)]
pub struct Budget {
    cap: usize,
    used: usize,
    /// `used` before the growth last allowed: given back if wasmtime then
    /// fails it (past the memory's own maximum, or the system's refusal).
    before: Option<usize>,
}

impl Budget {
    /// An empty budget of `cap` bytes.
    pub fn new(cap: usize) -> Budget {
        Budget {
            cap,
            used: 0,
            before: None,
        }
    }

    /// The bytes its memories and tables hold now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The cap, bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Takes `desired - current` more bytes, or refuses with a trap that
    /// says which cap was reached (the plugin's error then names it).
    fn grow(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.before = None;
        if maximum.is_some_and(|maximum| desired > maximum) {
            // wasmtime refuses it anyway (`memory.grow` answers -1): nothing
            // to charge.
            return Ok(false);
        }
        let used = self.used.saturating_sub(current).saturating_add(desired);
        if used > self.cap {
            wasmtime::bail!(
                "it reached its memory cap of {} MiB ([plugins.<name>.{KEY}] memory_mib)",
                self.cap >> 20
            );
        }
        self.before = Some(self.used);
        self.used = used;
        Ok(true)
    }

    /// A growth this budget allowed did not happen: its bytes are free again.
    fn refund(&mut self) {
        if let Some(before) = self.before.take() {
            self.used = before;
        }
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, _: wasmtime::Error) -> wasmtime::Result<()> {
        self.refund();
        Ok(())
    }

    fn table_grow_failed(&mut self, _: wasmtime::Error) -> wasmtime::Result<()> {
        self.refund();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            self.before = None;
            return Ok(false);
        }
        self.grow(
            current.saturating_mul(TABLE_ELEMENT),
            desired.saturating_mul(TABLE_ELEMENT),
            None,
        )
    }
}

/// The most instances a plugin may keep warm: each may hold up to half its
/// memory cap.
const MAX_WARM: usize = 64;

/// Splits a plugin's table into its limits and its own configuration.
///
/// # Errors
///
/// A `sandbox` table with an unknown key or a wrong type, a limit of 0, or
/// a host that is not a bare `host` or `host:port`.
pub fn split(table: &Value, plugin: &str) -> Result<(Limits, Value), String> {
    let mut config = table.clone();
    let sandbox = config
        .as_object_mut()
        .and_then(|t| t.remove(KEY))
        .unwrap_or(Value::Null);
    let limits = if sandbox.is_null() {
        Limits::default()
    } else {
        serde_json::from_value::<Limits>(sandbox)
            .map_err(|e| format!("[plugins.{plugin}.{KEY}]: {e}"))?
    };
    if limits.warm_instances > MAX_WARM {
        return Err(format!(
            "[plugins.{plugin}.{KEY}]: warm_instances is {}, at most {MAX_WARM}",
            limits.warm_instances
        ));
    }
    if limits.time_limit_ms == 0 || limits.memory_mib == 0 {
        return Err(format!(
            "[plugins.{plugin}.{KEY}]: time_limit_ms and memory_mib must be above 0"
        ));
    }
    if let Some(bad) = limits.hosts.iter().find(|h| !super::outbound::is_host(h)) {
        return Err(format!(
            "[plugins.{plugin}.{KEY}] hosts: {bad:?} is not a host or host:port \
             (no scheme, path or user)"
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
        let (limits, config) = split(
            &json!({"token": "t", "sandbox": {"time_limit_ms": 50}}),
            "p",
        )
        .unwrap();
        assert_eq!(
            limits,
            Limits {
                time_limit_ms: 50,
                ..Limits::default()
            }
        );
        assert_eq!(config, json!({"token": "t"}));
        assert_eq!(
            split(&Value::Null, "p").unwrap(),
            (Limits::default(), json!({}))
        );
    }

    #[test]
    fn a_wrong_limit_is_refused() {
        let err = split(&json!({"sandbox": {"time_limit": 50}}), "p").unwrap_err();
        assert!(err.contains("unknown field `time_limit`"), "{err}");
        assert!(
            err.starts_with("[plugins.p.sandbox]: "),
            "names the table: {err}"
        );
        assert!(split(&json!({"sandbox": {"memory_mib": 0}}), "p").is_err());
        let (limits, _) = split(&json!({"sandbox": {"warm_instances": 0}}), "p").unwrap();
        assert_eq!(limits.warm_instances, 0, "0 is allowed: no pool");
        let typo = split(
            &json!({"sandbox": {"warm_instances": 100_000_000_000_u64}}),
            "p",
        );
        assert!(typo.unwrap_err().contains("at most 64"));
        let (limits, _) = split(
            &json!({"sandbox": {"hosts": ["127.0.0.1:8080", "example.com"]}}),
            "p",
        )
        .unwrap();
        assert_eq!(limits.hosts, ["127.0.0.1:8080", "example.com"]);
        for bad in [
            "http://example.com",
            "example.com/hook",
            "u@example.com",
            "",
        ] {
            let err = split(&json!({"sandbox": {"hosts": [bad]}}), "p").unwrap_err();
            assert!(err.contains("is not a host or host:port"), "{bad}: {err}");
        }
    }

    #[test]
    fn memories_and_tables_count_together_against_the_cap() {
        let mut budget = Budget::new(4 << 20);
        // Two memories of 1.5 MiB each, then a table of 1,000 elements.
        assert!(budget.memory_growing(0, 3 << 19, None).unwrap());
        assert!(budget.memory_growing(0, 3 << 19, None).unwrap());
        assert!(budget.table_growing(0, 1000, None).unwrap());
        assert_eq!(budget.used(), (3 << 20) + 1000 * TABLE_ELEMENT);
        // One memory growing by 1 MiB more goes past 4 MiB in all, though
        // it alone stays under.
        let err = budget.memory_growing(3 << 19, 5 << 19, None).unwrap_err();
        assert!(err.to_string().contains("memory cap of 4 MiB"), "{err}");
        assert_eq!(budget.used(), (3 << 20) + 1000 * TABLE_ELEMENT, "unchanged");
        assert!(budget.memory_growing(3 << 19, 4 << 19, None).unwrap());
    }

    #[test]
    fn a_growth_that_does_not_happen_costs_nothing() {
        let mut budget = Budget::new(4 << 20);
        assert!(budget.memory_growing(0, 1 << 20, None).unwrap());
        // Past the memory's own maximum: refused, not charged.
        assert!(
            !budget
                .memory_growing(1 << 20, 3 << 20, Some(2 << 20))
                .unwrap()
        );
        assert_eq!(budget.used(), 1 << 20);
        // Allowed here, then failed in wasmtime: given back.
        assert!(budget.memory_growing(1 << 20, 3 << 20, None).unwrap());
        budget
            .memory_grow_failed(wasmtime::format_err!("no"))
            .unwrap();
        assert_eq!(budget.used(), 1 << 20);
        // A failure reported without a growth before it gives nothing back.
        budget
            .table_grow_failed(wasmtime::format_err!("no"))
            .unwrap();
        assert_eq!(budget.used(), 1 << 20);
    }
}
