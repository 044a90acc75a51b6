//! Reading what the `log` layer wrote: a fresh directory for a test's log
//! files, every file under it, its records, and one request's record.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A fresh directory for one test's config and logs (emptied first).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-router-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, recursively, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The records of the session files under `dir` (`errors`: of the errors
/// files instead).
pub fn records(dir: &Path, errors: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for path in files(dir) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("router_") || name.ends_with("_errors.jsonl") != errors {
            continue;
        }
        assert!(name.ends_with(".jsonl"), "{name}");
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    out
}

/// The one record of the request `id`.
pub fn by_id<'a>(records: &'a [Value], id: &str) -> &'a Value {
    let found: Vec<&Value> = records.iter().filter(|r| r["request_id"] == id).collect();
    assert_eq!(found.len(), 1, "one record for {id} in {records:#?}");
    found[0]
}
