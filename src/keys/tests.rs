use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const FULL: &str = r#"{"name": "team-a", "key": "sk-team-a-0123456789", "models": ["gpt-4o", "claude-*"], "expires": "2027-01-31T00:00:00Z", "rate_limit": {"requests": 600, "window": "60s", "tokens": 200000, "concurrency": 20}, "budget": {"usd": 100.0, "period": "month"}, "metadata": {"team": "platform"}, "budget_group": "team"}"#;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_full_json_line() {
    let k = VirtualKey::from_json_line(FULL).unwrap();
    assert_eq!(k.name(), "team-a");
    assert_eq!(k.key().expose(), "sk-team-a-0123456789");
    assert_eq!(
        k.models().unwrap().patterns().collect::<Vec<_>>(),
        ["gpt-4o", "claude-*"]
    );
    assert_eq!(k.expires().unwrap().as_str(), "2027-01-31T00:00:00Z");
    assert_eq!(k.expires().unwrap().at(), at(1_801_353_600));
    assert_eq!(
        k.rate_limit(),
        Some(&KeyRateLimit {
            requests: Some(600),
            tokens: Some(200_000),
            concurrency: Some(20),
            window: Duration::from_secs(60),
        })
    );
    assert_eq!(
        k.budget(),
        Some(&BudgetSpec {
            limit: BudgetLimit::Usd(100.0),
            period: BudgetPeriod::Month,
        })
    );
    assert_eq!(k.metadata()["team"], "platform");
    assert_eq!(
        k.budget_group(),
        Some(&BudgetGroup {
            key: "team".into(),
            value: "platform".into()
        })
    );
    // Debug and the description mask the key.
    assert!(!format!("{k:?}").contains("0123456789"));
    let d = k.describe(at(1_700_000_000));
    assert!(!d.to_string().contains("0123456789"), "{d}");
    assert_eq!(d["key"], "sk-...789");
    assert_eq!(d["expired"], false);
    assert_eq!(d["budget"], json!({"usd": 100.0, "period": "month"}));
    assert_eq!(d["rate_limit"]["window"], "1m");
    assert_eq!(
        d["budget_group"],
        json!({"key": "team", "value": "platform"})
    );
}

#[test]
fn a_minimal_line_allows_everything_forever() {
    let k = VirtualKey::from_json_line(r#"{"name":"b","key":"sk-b-0123456789"}"#).unwrap();
    assert!(k.allows("anything"));
    assert!(!k.is_expired_at(at(u32::MAX as u64 * 4)));
    assert!(k.rate_limit().is_none() && k.budget().is_none() && k.budget_group().is_none());
    let d = k.describe(SystemTime::now());
    assert_eq!(d["models"], Value::Null);
    assert_eq!(d["metadata"], json!({}));
    // A rate limit without a window: 60s.
    let k = VirtualKey::from_json_line(
        r#"{"name":"b","key":"sk-b-0123456789","rate_limit":{"concurrency":2}}"#,
    )
    .unwrap();
    assert_eq!(k.rate_limit().unwrap().window, Duration::from_secs(60));
}

#[test]
fn expiry() {
    let k = VirtualKey::from_json_line(
        r#"{"name":"e","key":"sk-e-0123456789","expires":"2027-01-31T09:00:00+09:00"}"#,
    )
    .unwrap();
    assert!(!k.is_expired_at(at(1_801_353_599)));
    assert!(k.is_expired_at(at(1_801_353_600)), "expired at the instant");
    assert!(k.is_expired_at(at(1_801_353_601)));
    for bad in [
        "2027-01-31",
        "2027-01-31 00:00:00",
        "2027-01-31T00:00:00",
        "2027-02-30T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "tomorrow",
    ] {
        let e = Expiry::parse(bad).unwrap_err();
        assert!(e.contains("RFC 3339") || e.contains("1970"), "{bad}: {e}");
    }
}

/// `line` is refused with an error about `field` whose message holds `says`.
#[track_caller]
fn refused(line: &str, field: &str, says: &str) {
    let e = VirtualKey::from_json_line(line).unwrap_err();
    assert_eq!(e.field, field, "{line}: {e}");
    assert!(e.message.contains(says), "{line}: {e}");
    assert!(!e.to_string().contains("sk-secret"), "the key leaked: {e}");
}

#[test]
fn bad_lines_name_the_field() {
    let k = r#""key":"sk-secret-0123456789""#;
    refused(
        &format!(r#"{{"name":"a",{k},"kee":1}}"#),
        "kee",
        "unknown field `kee`",
    );
    refused(&format!(r#"{{{k}}}"#), "", "missing field `name`");
    refused(r#"{"name":"a"}"#, "", "missing field `key`");
    refused(
        r#"{"name":"a","key":12345678901}"#,
        "key",
        "must be a string",
    );
    refused(r#"{"name":"a","key":"sk-secret two"}"#, "key", "space");
    refused(
        r#"{"name":"a","key":"${SECRET}"}"#,
        "key",
        "does not expand",
    );
    refused(
        &format!(r#"{{"name":"a b",{k}}}"#),
        "name",
        "letters, digits",
    );
    refused(&format!(r#"{{"name":"",{k}}}"#), "name", "empty");
    refused(
        &format!(r#"{{"name":"a",{k},"models":[]}}"#),
        "models",
        "allows no model",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"models":["ok","a b"]}}"#),
        "models[1]",
        "whitespace",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"expires":"soon"}}"#),
        "expires",
        "RFC 3339",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"rate_limit":{{}}}}"#),
        "rate_limit",
        "sets no limit",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"rate_limit":{{"requests":0}}}}"#),
        "rate_limit.requests",
        "at least 1",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"rate_limit":{{"requests":1,"window":"10"}}}}"#),
        "rate_limit.window",
        "no unit",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"rate_limit":{{"requests":-1}}}}"#),
        "rate_limit.requests",
        "invalid value",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"rate_limit":{{"key":"ip","requests":1}}}}"#),
        "rate_limit.key",
        "unknown field `key`",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"budget":{{"usd":1,"tokens":2,"period":"day"}}}}"#),
        "budget.tokens",
        "not both",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"budget":{{"usd":1}}}}"#),
        "budget",
        "period",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"budget":{{"usd":-1,"period":"day"}}}}"#),
        "budget.usd",
        "above 0",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"budget":{{"usd":1,"period":"fortnight"}}}}"#),
        "budget.period",
        "not a period",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"metadata":{{"team":1}}}}"#),
        "metadata.team",
        "invalid type",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"budget_group":"team"}}"#),
        "budget_group",
        "no metadata",
    );
    refused(
        &format!(r#"{{"name":"a",{k},"metadata":{{"org":"x"}},"budget_group":"team"}}"#),
        "budget_group",
        "`org`",
    );
    refused(&format!(r#"{{"name":"a",{k}}} x"#), "", "trailing");
    refused(&format!(r#"{{"name":"a",{k}"#), "", "EOF");
}

#[test]
fn metadata_is_bounded() {
    let base = VirtualKey::new("m", "sk-m-0123456789").unwrap();
    let many: BTreeMap<String, String> = (0..=MAX_METADATA_ENTRIES)
        .map(|i| (format!("k{i}"), "v".into()))
        .collect();
    assert_eq!(
        base.clone().with_metadata(many).unwrap_err().field,
        "metadata"
    );
    let long = BTreeMap::from([("k".to_string(), "v".repeat(MAX_METADATA_VALUE_LEN + 1))]);
    assert_eq!(
        base.clone().with_metadata(long).unwrap_err().field,
        "metadata.k"
    );
    let ctl = BTreeMap::from([("k".to_string(), "a\nb".to_string())]);
    assert!(base.with_metadata(ctl).is_err());
}

#[test]
fn names() {
    assert_eq!(name_problem("team-a.prod:eu@x/y_1"), None);
    assert!(name_problem("").is_some());
    assert!(name_problem("é").is_some());
    assert!(name_problem(&"a".repeat(MAX_NAME_LEN + 1)).is_some());
}

#[test]
fn client_key_names_its_virtual_key() {
    let vk = Arc::new(VirtualKey::from_json_line(FULL).unwrap());
    let c = ClientKey {
        budget_group: vk.budget_group().cloned(),
        virtual_key: Some(vk),
        budget: None,
    };
    assert_eq!(c.name(), Some("team-a"));
    assert_eq!(ClientKey::default().name(), None);
}
