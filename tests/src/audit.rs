//! Reading the host's audit log back in tests.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Every record in the audit log at `path` (each line must be one JSON object).
pub fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}")))
        .collect()
}

/// Waits (up to 10 s) until the log holds a record that `pred` accepts, and returns it. Records
/// are written by the host's tasks as things happen, so a test may look before the last one
/// landed.
pub async fn wait_for(path: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = records(path).into_iter().find(|r| pred(r)) {
            return r;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "no audit record for {what} in {}:\n{}",
                path.display(),
                std::fs::read_to_string(path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records of one event kind.
pub fn events<'a>(all: &'a [Value], event: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["event"] == event).collect()
}
