//! The spend file: the ledger's spend saved as JSON so that it survives a
//! restart without Redis. Written whole to a temporary file next to it,
//! synced, then renamed over it (a crash leaves the old file or the new
//! one, never half of one); read once at start.
//!
//! ```json
//! {"version": 1, "saved_at": 1796828400, "budgets": [
//!   {"budget": {"key": "team-a"}, "unit": "tokens", "period": "day", "buckets": [[1796774400, 1200]]},
//!   {"budget": {"group": {"key": "team", "value": "platform"}}, "unit": "usd", "period": "30d",
//!    "buckets": [[20800, 1500000000], [20801, 250000000]]}]}
//! ```
//!
//! Amounts are tokens or nano-dollars; a bucket is keyed as the ledger keys
//! it (a calendar period's start, or a rolling bucket's number).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ledger::{Buckets, Saved, Unit};
use crate::keys::{BudgetGroup, BudgetId, BudgetPeriod};

/// The default spend file's name, in the config file's directory.
pub const SPEND_FILE: &str = "llm-router-spend.json";

/// The largest spend file read at start.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    saved_at: u64,
    budgets: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    budget: Id,
    unit: String,
    period: String,
    buckets: Vec<(u64, u64)>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Id {
    Key(String),
    Group { key: String, value: String },
}

/// The file's text for `saved`.
pub(crate) fn encode(saved: &[Saved], now: u64) -> Vec<u8> {
    let file = File {
        version: 1,
        saved_at: now,
        budgets: saved
            .iter()
            .map(|s| Entry {
                budget: match &s.id {
                    BudgetId::Key(name) => Id::Key(name.clone()),
                    BudgetId::Group(g) => Id::Group {
                        key: g.key.clone(),
                        value: g.value.clone(),
                    },
                },
                unit: s.unit.as_str().to_string(),
                period: s.period.to_string(),
                buckets: s.buckets.as_slice().to_vec(),
            })
            .collect(),
    };
    serde_json::to_vec(&file).unwrap_or_default()
}

/// The budgets of a spend file's text; entries it cannot read (an unknown
/// unit or period) are skipped.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Saved>, String> {
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != 1 {
        return Err(format!(
            "version {} is not one this version reads",
            file.version
        ));
    }
    Ok(file
        .budgets
        .into_iter()
        .filter_map(|e| {
            let unit = match e.unit.as_str() {
                "tokens" => Unit::Tokens,
                "usd" => Unit::NanoUsd,
                _ => return None,
            };
            Some(Saved {
                id: match e.budget {
                    Id::Key(name) => BudgetId::Key(name),
                    Id::Group { key, value } => BudgetId::Group(BudgetGroup { key, value }),
                },
                unit,
                period: BudgetPeriod::parse(&e.period).ok()?,
                buckets: Buckets::from_pairs(e.buckets),
            })
        })
        .collect())
}

/// Read the spend file at `path`: `Ok(None)` when there is none. A file
/// that cannot be read or parsed is an error (the caller moves it aside).
pub(crate) fn read(path: &Path) -> Result<Option<Vec<Saved>>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    use std::io::Read as _;
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    decode(&bytes).map(Some)
}

/// Write `bytes` to `path` atomically: a temporary file next to it (its
/// name unique to this process and call), synced, renamed over it.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| SPEND_FILE.to_string());
    let tmp: PathBuf = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn round_trip() {
        let saved = vec![
            Saved {
                id: BudgetId::Key("team-a".into()),
                unit: Unit::Tokens,
                period: BudgetPeriod::Day,
                buckets: Buckets::from_pairs(vec![(86_400, 12)]),
            },
            Saved {
                id: BudgetId::Group(BudgetGroup {
                    key: "team".into(),
                    value: "a=b \"c\"".into(),
                }),
                unit: Unit::NanoUsd,
                period: BudgetPeriod::Rolling(Duration::from_secs(30 * 86_400)),
                buckets: Buckets::from_pairs(vec![(3, 1), (1, 2), (3, 4)]),
            },
        ];
        let back = decode(&encode(&saved, 7)).unwrap();
        assert_eq!(back[0], saved[0]);
        assert_eq!(back[1].buckets.as_slice(), &[(1, 2), (3, 5)]);
    }

    #[test]
    fn unreadable_entries_are_skipped_and_bad_files_refused() {
        let text = br#"{"version":1,"saved_at":0,"budgets":[
            {"budget":{"key":"a"},"unit":"euros","period":"day","buckets":[]},
            {"budget":{"key":"b"},"unit":"tokens","period":"fortnight","buckets":[]},
            {"budget":{"key":"c"},"unit":"tokens","period":"week","buckets":[[0,1]]}]}"#;
        let got = decode(text).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, BudgetId::Key("c".into()));
        assert!(decode(b"{").is_err());
        assert!(decode(br#"{"version":2,"saved_at":0,"budgets":[]}"#).is_err());
    }

    #[test]
    fn writes_replace_the_file_whole() {
        let dir = std::env::temp_dir().join(format!(
            "llm-router-spend-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SPEND_FILE);
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &encode(&[], 1)).unwrap();
        write(&path, &encode(&[], 2)).unwrap();
        assert_eq!(read(&path).unwrap(), Some(vec![]));
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::write(&path, b"not json").unwrap();
        assert!(read(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
