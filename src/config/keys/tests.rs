use std::path::Path;
use std::time::Duration;

use crate::config::LayerName;
use crate::config::{Config, ConfigError};
use crate::layers::auth::{BudgetLimit, BudgetPeriod, KeySource, VirtualKey};

const MIN: &str = "[[backends]]\nname = \"m\"\nprovider = \"mock\"\n\n[[models]]\nname = \"echo\"\ntargets = [{ backend = \"m\" }]\n";

/// `MIN` is 7 lines and a blank one: the `[[keys]]` of a test start at line 9.
fn parse(keys: &str) -> Result<Config, ConfigError> {
    parse_env(keys, &[])
}

fn parse_env(keys: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(&format!("{MIN}\n{keys}"), Path::new("c.toml"), &move |n| {
        vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
    })
}

fn virtual_keys(c: &Config) -> Vec<&VirtualKey> {
    c.auth
        .keys
        .iter()
        .filter_map(|k| k.virtual_key.as_deref())
        .collect()
}

#[track_caller]
fn refused(keys: &str, line: usize, key: &str, says: &str) {
    let e = parse_env(keys, &[("TEAM_KEY", "sk-team-0123456789")]).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.key.as_deref()),
        ("c.toml", Some(line), Some(key)),
        "{e}"
    );
    assert!(e.message.contains(says), "{e}");
    assert!(!e.to_string().contains("0123456789"), "the key leaked: {e}");
}

const FULL: &str = r#"[[keys]]
name = "team-a"
key = "${TEAM_KEY}"
models = ["gpt-4o", "claude-*"]
expires = "2027-01-31T00:00:00Z"
rate_limit = { requests = 600, window = "60s", tokens = 200000, concurrency = 20 }
budget = { usd = 100, period = "month" }
metadata = { team = "platform", owner = "ops" }
budget_group = "team"

[[keys]]
name = "batch"
key = "sk-batch-0123456789"
budget = { tokens = 5000000, period = "30d" }
"#;

#[test]
fn keys_are_client_keys_of_auth() {
    let c = parse_env(FULL, &[("TEAM_KEY", "sk-team-0123456789")]).unwrap();
    // `[[keys]]` alone puts `auth` in the implicit order.
    assert!(c.stack.contains(&LayerName::Auth), "{:?}", c.stack);
    let keys = virtual_keys(&c);
    assert_eq!(keys.len(), 2);
    let a = keys[0];
    assert_eq!(a.name(), "team-a");
    assert_eq!(a.key().expose(), "sk-team-0123456789", "${{VAR}} expanded");
    assert!(a.allows("claude-opus-4") && a.allows("gpt-4o") && !a.allows("gpt-4"));
    assert_eq!(a.expires().unwrap().as_str(), "2027-01-31T00:00:00Z");
    let limit = a.rate_limit().unwrap();
    assert_eq!(
        (
            limit.requests,
            limit.tokens,
            limit.concurrency,
            limit.window
        ),
        (Some(600), Some(200_000), Some(20), Duration::from_secs(60))
    );
    let budget = a.budget().unwrap();
    assert_eq!(
        budget.limit,
        BudgetLimit::Usd(100.0),
        "an integer is dollars too"
    );
    assert_eq!(budget.period, BudgetPeriod::Month);
    assert_eq!(a.budget_group().unwrap().value, "platform");
    assert_eq!(a.metadata().len(), 2);
    let b = keys[1];
    assert_eq!(b.budget().unwrap().limit, BudgetLimit::Tokens(5_000_000));
    assert_eq!(
        b.budget().unwrap().period,
        BudgetPeriod::Rolling(Duration::from_secs(30 * 86_400))
    );
    assert!(b.allows("anything") && b.rate_limit().is_none());
    assert!(c.auth.keys.iter().all(|k| k.source == KeySource::Config));
    // No key in clear in Debug.
    let debug = format!("{:?}", c.auth);
    assert!(!debug.contains("0123456789"), "{debug}");
    // A key's rate_limit without `rate_limit` in the order: a warning.
    let c = parse_env(
        &format!("[stack]\norder = [\"auth\"]\n\n{FULL}"),
        &[("TEAM_KEY", "sk-team-0123456789")],
    )
    .unwrap();
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("`team-a` has a rate_limit")),
        "{:?}",
        c.warnings()
    );
}

#[test]
fn bad_values_name_file_line_and_key() {
    let head = "[[keys]]\nname = \"a\"\nkey = \"${TEAM_KEY}\"\n";
    // The entry starts at line 9: name 10, key 11, the next line 12.
    refused(
        "[[keys]]\nname = \"a\"\n",
        9,
        "keys[0]",
        "missing field `key`",
    );
    refused(
        &format!("{head}modles = [\"x\"]\n"),
        12,
        "keys[0].modles",
        "unknown key `modles` (did you mean `models`?)",
    );
    refused(
        "[[keys]]\nname = \"a b\"\nkey = \"k-0123456789\"\n",
        10,
        "keys[0].name",
        "letters, digits",
    );
    refused(
        "[[keys]]\nname = \"a\"\nkey = \"${MISSING:-}\"\n",
        11,
        "keys[0].key",
        "is empty",
    );
    refused(
        "[[keys]]\nname = \"a\"\nkey = \"sk 0123456789\"\n",
        11,
        "keys[0].key",
        "space",
    );
    refused(
        &format!("{head}models = [\"ok\",\n  \"a b\"]\n"),
        13,
        "keys[0].models[1]",
        "whitespace",
    );
    refused(
        &format!("{head}models = []\n"),
        12,
        "keys[0].models",
        "allows no model",
    );
    refused(
        &format!("{head}expires = \"2027-01-31\"\n"),
        12,
        "keys[0].expires",
        "RFC 3339",
    );
    refused(
        &format!("{head}rate_limit = {{ window = \"60s\" }}\n"),
        12,
        "keys[0].rate_limit",
        "sets no limit",
    );
    refused(
        &format!("{head}rate_limit = {{ requests = 0 }}\n"),
        12,
        "keys[0].rate_limit.requests",
        "from 1",
    );
    refused(
        &format!("{head}rate_limit = {{ requests = 1, window = \"1.5s\" }}\n"),
        12,
        "keys[0].rate_limit.window",
        "whole number of seconds",
    );
    refused(
        &format!("{head}rate_limit = {{ requests = 1, key = \"ip\" }}\n"),
        12,
        "keys[0].rate_limit.key",
        "unknown key `key`",
    );
    refused(
        &format!("{head}budget = {{ usd = 1.0 }}\n"),
        12,
        "keys[0].budget",
        "period",
    );
    refused(
        &format!("{head}budget = {{ usd = 1.0, tokens = 5, period = \"day\" }}\n"),
        12,
        "keys[0].budget.tokens",
        "not both",
    );
    refused(
        &format!("{head}budget = {{ usd = -1.0, period = \"day\" }}\n"),
        12,
        "keys[0].budget.usd",
        "above 0",
    );
    refused(
        &format!("{head}budget = {{ tokens = -5, period = \"day\" }}\n"),
        12,
        "keys[0].budget.tokens",
        "from 1",
    );
    refused(
        &format!("{head}budget = {{ usd = 1.0, period = \"quarter\" }}\n"),
        12,
        "keys[0].budget.period",
        "not a period",
    );
    refused(
        &format!("{head}metadata = {{ team = 1 }}\n"),
        12,
        "keys[0].metadata.team",
        "invalid type",
    );
    refused(
        &format!("{head}metadata = {{ team = \"x\" }}\nbudget_group = \"org\"\n"),
        13,
        "keys[0].budget_group",
        "`team`",
    );
    refused(
        &format!("{head}budget_group = \"org\"\n"),
        12,
        "keys[0].budget_group",
        "no metadata",
    );
    // Names and keys are unique.
    refused(
        &format!("{head}\n[[keys]]\nname = \"a\"\nkey = \"sk-other-0123456789\"\n"),
        14,
        "keys[1].name",
        "duplicate key name `a` (first defined at line 10)",
    );
    refused(
        &format!("{head}\n[[keys]]\nname = \"b\"\nkey = \"${{TEAM_KEY}}\"\n"),
        15,
        "keys[1].key",
        "same key as keys[0] (`a`, line 11)",
    );
    // A virtual key is neither a plain key nor an admin key.
    refused(
        &format!("[auth]\nkeys = [\"${{TEAM_KEY}}\"]\n\n{head}"),
        14,
        "keys[0].key",
        "also a key of [auth] (config)",
    );
    refused(
        &format!("[auth]\nadmin_keys = [\"${{TEAM_KEY}}\"]\n\n{head}"),
        14,
        "keys[0].key",
        "admin key",
    );
    // An unset variable: the substitution's own error, at its line.
    let e = parse("[[keys]]\nname = \"a\"\nkey = \"${NOPE}\"\n").unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(11), Some("keys[0].key")),
        "{e}"
    );
    assert!(e.message.contains("NOPE"), "{e}");
}

#[test]
fn keys_file_json_lines() {
    let dir = std::env::temp_dir().join(format!("llm-router-vkeys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.txt");
    std::fs::write(
        &file,
        "# plain and virtual keys\nsk-plain-0123456789\n{\"name\": \"f\", \"key\": \"sk-file-0123456789\", \"models\": [\"echo\"], \"rate_limit\": {\"requests\": 5}}\n",
    )
    .unwrap();
    let config = |keys: &str| {
        Config::parse(
            &format!("{MIN}\n[auth]\nkeys_file = \"keys.txt\"\n\n{keys}"),
            &dir.join("config.toml"),
            &|_| None,
        )
    };
    let c = config("").unwrap();
    let sources: Vec<(&str, Option<&str>, String)> = c
        .auth
        .keys
        .iter()
        .map(|k| {
            (
                k.key.expose(),
                k.virtual_key.as_ref().map(|v| v.name()),
                k.source.to_string(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("sk-plain-0123456789", None, "keys_file".to_string()),
            ("sk-file-0123456789", Some("f"), "keys_file".to_string()),
        ]
    );
    assert_eq!(
        c.auth.keys[1]
            .virtual_key
            .as_ref()
            .unwrap()
            .rate_limit()
            .unwrap()
            .requests,
        Some(5)
    );
    // A `[[keys]]` name used in the file too: an error at `keys_file`.
    let e = config("[[keys]]\nname = \"f\"\nkey = \"sk-cfg-0123456789\"\n").unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(10), Some("auth.keys_file")),
        "{e}"
    );
    assert!(e.message.contains("name `f`"), "{e}");
    // A bad line: the file's line, and never the key.
    std::fs::write(&file, "sk-plain-0123456789\n\n{\"name\": \"f\", \"key\": \"sk-file-0123456789\", \"expires\": \"never\"}\n").unwrap();
    let e = config("").unwrap_err();
    assert!(e.message.contains("line 3: expires:"), "{e}");
    assert!(!e.message.contains("sk-file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn jwt_budget_group_claim() {
    let jwt = "[auth]\njwt = { secret = \"an-hs256-secret-of-at-least-32-bytes!\", budget_group_claim = \"team\" }\n";
    let c = parse(jwt).unwrap();
    assert!(format!("{:?}", c.auth.jwt).contains("budget_group_claim: Some(\"team\")"));
    let e = parse(&jwt.replace("\"team\"", "\" \"")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.jwt.budget_group_claim"), "{e}");
}

#[test]
fn budget_follows_auth_in_the_order() {
    let key = "[[keys]]\nname = \"a\"\nkey = \"sk-a-0123456789\"\nbudget = { tokens = 10, period = \"day\" }\n";
    // The default order: `budget` right after `auth`.
    let c = parse(key).unwrap();
    let at = |l: LayerName| c.stack.iter().position(|x| *x == l);
    assert_eq!(at(LayerName::Budget), at(LayerName::Auth).map(|a| a + 1));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // No key at all: neither is in the default order.
    let c = parse("").unwrap();
    assert!(!c.stack.contains(&LayerName::Budget) && !c.stack.contains(&LayerName::Auth));
    // Named before `auth`: an error naming both.
    let e = parse(&format!("[stack]\norder = [\"budget\", \"auth\"]\n\n{key}")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("stack.order[0]"));
    assert_eq!(e.line, Some(10));
    assert!(e.message.contains("after `auth`"), "{e}");
    // A budget without `budget` in the order: a warning.
    let c = parse(&format!("[stack]\norder = [\"auth\"]\n\n{key}")).unwrap();
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("`a` has a budget but `budget` is not in [stack] order")),
        "{:?}",
        c.warnings()
    );
}

#[test]
fn a_group_shares_the_budget_its_first_key_gives() {
    let keys = "[[keys]]\nname = \"a\"\nkey = \"sk-a-0123456789\"\nbudget = { tokens = 10, period = \"day\" }\nmetadata = { team = \"x\" }\nbudget_group = \"team\"\n\n\
                [[keys]]\nname = \"b\"\nkey = \"sk-b-0123456789\"\nbudget = { tokens = 20, period = \"day\" }\nmetadata = { team = \"x\" }\nbudget_group = \"team\"\n\n\
                [[keys]]\nname = \"c\"\nkey = \"sk-c-0123456789\"\nmetadata = { team = \"x\" }\nbudget_group = \"team\"\n\n\
                [[keys]]\nname = \"d\"\nkey = \"sk-d-0123456789\"\nbudget = { tokens = 5, period = \"week\" }\n";
    let c = parse(keys).unwrap();
    let keys = virtual_keys(&c);
    let groups = crate::keys::group_budgets(keys.iter().copied());
    let budget = |i: usize| keys[i].budget_of(|g| groups.get(g).copied());
    for i in 0..3 {
        let b = budget(i).unwrap();
        assert_eq!(b.id.to_string(), "group:team=x");
        assert_eq!(b.spec.limit, BudgetLimit::Tokens(10));
    }
    assert_eq!(budget(3).unwrap().id.to_string(), "key:d");
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("key `b` gives budget group `team=x` a budget other")),
        "{:?}",
        c.warnings()
    );
}
