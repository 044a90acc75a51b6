//! [`Budgets`] and its spend file: saved, opened again, an unreadable one
//! moved aside.

use std::sync::Arc;

use crate::keys::{BudgetId, BudgetSpec};
use crate::layers::budget::budgets::unix_now;
use crate::layers::budget::{Budgets, SPEND_FILE};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("llm-router-budgets-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn spend_is_saved_and_opened_again() {
    let d = dir("saved");
    let path = d.join(SPEND_FILE);
    let (id, spec) = (
        BudgetId::Key("a".into()),
        BudgetSpec::parse(None, Some(100), Some("week")).unwrap(),
    );
    let now = unix_now();
    let budgets = Arc::new(Budgets::with_spend_file(&path));
    // Nothing read or written before it is opened.
    budgets.ledger().reserve(&id, &spec, 10, now).unwrap();
    budgets.ledger().settle(&id, &spec, 10, 7, now);
    assert!(!path.exists());
    budgets.save().unwrap();
    let again = Arc::new(Budgets::with_spend_file(&path));
    assert_eq!(again.ledger().view(&id, &spec, now).spent, 0);
    again.open();
    assert_eq!(again.ledger().view(&id, &spec, now).spent, 7);
    // Opened once: a second open does not count it twice.
    again.open();
    assert_eq!(again.ledger().view(&id, &spec, now).spent, 7);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_unreadable_spend_file_is_moved_aside() {
    let d = dir("unreadable");
    let path = d.join(SPEND_FILE);
    std::fs::write(&path, "{ not json").unwrap();
    let budgets = Arc::new(Budgets::with_spend_file(&path));
    budgets.open();
    assert!(budgets.ledger().is_empty());
    assert!(!path.exists());
    let aside: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(
        aside[0].starts_with("llm-router-spend.json.unreadable-"),
        "{aside:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
