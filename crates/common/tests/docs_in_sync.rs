//! The operator's documentation and the code agree: every configuration key the services know
//! has a row in docs/operations.md ("Configuration") and every row a key, with the default the
//! code uses; every metric the services register has a row in its "Metrics" table (of the right
//! type) and every row a metric; and every metric the Grafana dashboard queries exists.
//!
//! The checks read the source text, so they need no running service. Each check is a function
//! over text; the tests at the end show that each one fails, naming what is missing, when a row
//! or a metric goes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use confab_common::config::KNOWN_KEYS;

/// Read without the `CONFAB_` prefix (config.rs: `CONVENTIONAL_KEYS`).
const CONVENTIONAL_KEYS: &[&str] = &["DATABASE_URL", "REDIS_URL"];

/// Source getters whose second argument is the default (`src.number("KEY", 20, 1, 1000)`).
const GETTERS_WITH_DEFAULT: &[&str] = &["string", "number", "seconds", "url", "list", "parse"];
/// Source getters without a default.
const GETTERS: &[&str] = &["get", "required"];

const METRIC_MACROS: &[(&str, &str)] = &[
    ("counter!(", "counter"),
    ("gauge!(", "gauge"),
    ("histogram!(", "histogram"),
    ("describe_counter!(", "counter"),
    ("describe_gauge!(", "gauge"),
    ("describe_histogram!(", "histogram"),
];

const SERVICE_PREFIXES: &[&str] = &["api_", "gateway_", "recorder_", "ingest_", "sfu_"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `services/*/src` and `crates/*/src`, without its `#[cfg(test)]` module (which by the
/// project's convention comes last): `(path, text)`.
fn service_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    let packages = ["services", "crates"].into_iter().flat_map(|dir| std::fs::read_dir(root().join(dir)).unwrap());
    for package in packages.map(Result::unwrap) {
        let src = package.path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap().to_owned();
            (path.strip_prefix(root()).unwrap_or(&path).display().to_string(), text)
        })
        .collect()
}

/// The text of the `## {heading}` section.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no section \"{heading}\""));
    let body = &doc[start + heading.len() + 5..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

/// The cells of each row of the section's table (header and separator left out).
fn table_rows(section: &str) -> Vec<Vec<String>> {
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| line.trim().trim_matches('|').split('|').map(|cell| cell.trim().to_owned()).collect())
        .collect()
}

/// The `code spans` of a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// A string literal at the start of `text` (after blanks): its content and the rest.
fn string_literal(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start().strip_prefix('"')?;
    let end = text.find('"')?;
    Some((&text[..end], &text[end + 1..]))
}

/// A literal argument at the start of `text` (a string, a number or a bool) that is the whole
/// argument (followed by `,` or `)`): its value as the docs would write it.
fn literal_argument(text: &str) -> Option<String> {
    let text = text.trim_start();
    let (value, rest) = if let Some((value, rest)) = string_literal(text) {
        (value.to_owned(), rest)
    } else {
        let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
        let token = &text[..end];
        let numeric = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit() || b == b'_');
        if !(numeric || token == "true" || token == "false") {
            return None;
        }
        (token.replace('_', ""), &text[end..])
    };
    rest.trim_start().starts_with([',', ')']).then_some(value)
}

/// A configuration key as the code names it.
fn is_config_key(key: &str) -> bool {
    key.starts_with("CONFAB_") || CONVENTIONAL_KEYS.contains(&key)
}

/// What the code reads: every key passed to a `Source` getter, with the literal defaults given.
fn keys_read(sources: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, text) in sources {
        for getter in GETTERS_WITH_DEFAULT.iter().chain(GETTERS) {
            let call = format!(".{getter}(");
            for (at, _) in text.match_indices(&call) {
                let Some((key, rest)) = string_literal(&text[at + call.len()..]) else { continue };
                if !is_config_key(key) {
                    continue;
                }
                let defaults = keys.entry(key.to_owned()).or_default();
                if GETTERS_WITH_DEFAULT.contains(getter)
                    && let Some(default) = rest.trim_start().strip_prefix(',').and_then(literal_argument)
                {
                    defaults.insert(default);
                }
            }
        }
    }
    keys
}

/// The configuration table against `known` (the keys the services accept) and what the code
/// reads with which defaults.
fn check_config(
    doc: &str,
    known: &BTreeSet<String>,
    read: &BTreeMap<String, BTreeSet<String>>,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut documented: BTreeMap<String, String> = BTreeMap::new();
    for row in table_rows(section(doc, "Configuration")) {
        let [names, default, meaning] = &row[..] else {
            problems.push(format!("a configuration row without 3 columns: {row:?}"));
            continue;
        };
        if default.is_empty() || meaning.is_empty() {
            problems.push(format!("{names}: the default and meaning columns must not be empty"));
        }
        for name in code_spans(names) {
            let name = name.trim_end_matches("(_FILE)");
            // `KEY_FILE` documents `KEY` given through a file.
            let key = match name.strip_suffix("_FILE") {
                Some(base) if !known.contains(name) && known.contains(base) => base,
                _ => name,
            };
            documented.insert(key.to_owned(), default.clone());
        }
    }
    let undocumented: Vec<_> = known.iter().filter(|k| !documented.contains_key(*k)).collect();
    if !undocumented.is_empty() {
        problems.push(format!("known keys without a row in docs/operations.md: {undocumented:?}"));
    }
    let unknown: Vec<_> = documented.keys().filter(|k| !known.contains(*k)).collect();
    if !unknown.is_empty() {
        problems.push(format!("documented keys that no service knows (config.rs KNOWN_KEYS): {unknown:?}"));
    }
    let unaccepted: Vec<_> = read.keys().filter(|k| !known.contains(*k)).collect();
    if !unaccepted.is_empty() {
        problems.push(format!("keys read by the code but refused at start-up (not in KNOWN_KEYS): {unaccepted:?}"));
    }
    for (key, defaults) in read {
        // Several defaults (e.g. each service's own `CONFAB_BIND`) are described in words.
        let (Some(doc_default), [default]) = (documented.get(key), &defaults.iter().collect::<Vec<_>>()[..]) else {
            continue;
        };
        let agrees =
            if default.is_empty() { doc_default.contains('—') } else { doc_default.contains(default.as_str()) };
        if !agrees {
            let shown = if default.is_empty() { "— (none)" } else { default.as_str() };
            problems.push(format!("{key}: the code's default is {shown:?}, the docs say {doc_default:?}"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Every metric the code registers, with its type.
fn metrics_registered(sources: &[(String, String)]) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut metrics = BTreeMap::new();
    let mut problems = Vec::new();
    for (path, text) in sources {
        for (call, kind) in METRIC_MACROS {
            for (at, _) in text.match_indices(call) {
                // `counter!(` also ends `describe_counter!(`: counted once, as the longer one.
                if !call.starts_with("describe_") && text[..at].ends_with("describe_") {
                    continue;
                }
                match string_literal(&text[at + call.len()..]) {
                    Some((name, _)) => {
                        if let Some(other) = metrics.insert(name.to_owned(), (*kind).to_owned())
                            && other != *kind
                        {
                            problems.push(format!("{name} is registered both as a {other} and as a {kind}"));
                        }
                    }
                    None => problems.push(format!("{path}: a {call}…) whose name is not a string literal")),
                }
            }
        }
    }
    if problems.is_empty() { Ok(metrics) } else { Err(problems) }
}

/// The metrics table against the registered metrics, and the naming rules.
fn check_metrics(doc: &str, registered: &BTreeMap<String, String>) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut documented = BTreeMap::new();
    for row in table_rows(section(doc, "Metrics")) {
        let [names, kind, _labels, meaning] = &row[..] else {
            problems.push(format!("a metrics row without 4 columns: {row:?}"));
            continue;
        };
        if meaning.is_empty() {
            problems.push(format!("{names}: no meaning"));
        }
        for name in code_spans(names) {
            documented.insert(name, kind.clone());
        }
    }
    let undocumented: Vec<_> = registered.keys().filter(|m| !documented.contains_key(*m)).collect();
    if !undocumented.is_empty() {
        problems.push(format!(
            "metrics registered in services/*/src or crates/*/src without a row in docs/operations.md: {undocumented:?}"
        ));
    }
    let missing: Vec<_> = documented.keys().filter(|m| !registered.contains_key(*m)).collect();
    if !missing.is_empty() {
        problems.push(format!("documented metrics that no service registers: {missing:?}"));
    }
    for (name, kind) in registered {
        if let Some(doc_kind) = documented.get(name).filter(|d| *d != kind) {
            problems.push(format!("{name} is a {kind}, documented as a {doc_kind}"));
        }
        if !SERVICE_PREFIXES.iter().any(|p| name.starts_with(p)) {
            problems.push(format!("{name} does not start with its service ({SERVICE_PREFIXES:?})"));
        }
        if (kind == "counter") != name.ends_with("_total") {
            problems.push(format!("{name}: counters, and only counters, end in _total"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Every query of the dashboard (`expr` of a panel target, `query` of a variable).
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        serde_json::Value::String(query) if key == "expr" || key == "query" => out.push(query.clone()),
                        serde_json::Value::Object(query) if key == "query" => {
                            out.extend(query.get("query").and_then(|q| q.as_str()).map(str::to_owned))
                        }
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// The dashboard's queries against the registered metrics; how many metric references it has.
fn check_dashboard(dashboard: &str, registered: &BTreeMap<String, String>) -> Result<usize, Vec<String>> {
    let dashboard: serde_json::Value =
        serde_json::from_str(dashboard).map_err(|e| vec![format!("deploy/grafana/confab.json: {e}")])?;
    let mut problems = Vec::new();
    let mut referenced = 0;
    for query in dashboard_queries(&dashboard) {
        let words = query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        for word in words.filter(|w| SERVICE_PREFIXES.iter().any(|p| w.starts_with(p))) {
            referenced += 1;
            let series = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| word.strip_suffix(suffix))
                .find(|base| registered.get(*base).is_some_and(|kind| kind == "histogram"));
            if series.is_none() && !registered.contains_key(word) {
                problems.push(format!("the dashboard queries {word}, which no service registers (in {query:?})"));
            }
        }
    }
    if referenced == 0 {
        problems.push("the dashboard queries no Confab metric".to_owned());
    }
    if problems.is_empty() { Ok(referenced) } else { Err(problems) }
}

fn known_keys() -> BTreeSet<String> {
    KNOWN_KEYS.iter().chain(CONVENTIONAL_KEYS).map(|k| (*k).to_owned()).collect()
}

fn assert_ok<T>(result: Result<T, Vec<String>>) -> T {
    result.unwrap_or_else(|problems| panic!("docs and code disagree:\n- {}", problems.join("\n- ")))
}

#[test]
fn every_config_key_is_documented_with_its_default_and_every_documented_key_exists() {
    let read = keys_read(&service_sources());
    assert!(read.len() >= 20, "the getter scan found too few keys to be working: {read:?}");
    assert_ok(check_config(&read_doc(), &known_keys(), &read));
}

#[test]
fn every_metric_is_documented_and_every_documented_metric_exists() {
    let registered = assert_ok(metrics_registered(&service_sources()));
    assert!(registered.len() >= 20, "the metric scan found too few metrics to be working: {registered:?}");
    assert_ok(check_metrics(&read_doc(), &registered));
}

#[test]
fn every_metric_on_the_dashboard_exists() {
    let registered = assert_ok(metrics_registered(&service_sources()));
    assert_ok(check_dashboard(&read("deploy/grafana/confab.json"), &registered));
}

fn read_doc() -> String {
    read("docs/operations.md")
}

/// `doc` without its lines containing `needle` (there must be one).
fn without_line(doc: &str, needle: &str) -> String {
    assert!(doc.contains(needle), "{needle} not in the text");
    doc.lines().filter(|line| !line.contains(needle)).map(|line| format!("{line}\n")).collect()
}

fn failure<T: std::fmt::Debug>(result: Result<T, Vec<String>>) -> String {
    result.expect_err("the check should have failed").join("\n")
}

#[test]
fn the_config_check_names_a_key_whose_row_is_missing_and_a_row_without_a_key() {
    let (doc, known, read) = (read_doc(), known_keys(), keys_read(&service_sources()));
    let err = failure(check_config(&without_line(&doc, "| `CONFAB_LOG_LEVEL` |"), &known, &read));
    assert!(err.contains("without a row") && err.contains("CONFAB_LOG_LEVEL"), "{err}");
    let mut fewer = known.clone();
    fewer.remove("CONFAB_WEB_DIR");
    let err = failure(check_config(&doc, &fewer, &read));
    assert!(err.contains("no service knows") && err.contains("CONFAB_WEB_DIR"), "{err}");
}

#[test]
fn the_config_check_names_a_default_that_differs_from_the_code() {
    let (doc, known, read) = (read_doc(), known_keys(), keys_read(&service_sources()));
    assert_eq!(read["CONFAB_DB_MAX_CONNECTIONS"], BTreeSet::from(["20".to_owned()]));
    let changed = doc.replace("| `CONFAB_DB_MAX_CONNECTIONS` | 20 |", "| `CONFAB_DB_MAX_CONNECTIONS` | 10 |");
    let err = failure(check_config(&changed, &known, &read));
    assert!(err.contains("CONFAB_DB_MAX_CONNECTIONS") && err.contains("\"20\""), "{err}");
}

#[test]
fn the_metrics_check_names_an_undocumented_and_a_vanished_metric() {
    let doc = read_doc();
    let registered = assert_ok(metrics_registered(&service_sources()));
    let err = failure(check_metrics(&without_line(&doc, "| `gateway_resyncs_total` |"), &registered));
    assert!(err.contains("without a row") && err.contains("gateway_resyncs_total"), "{err}");
    let mut fewer = registered.clone();
    fewer.remove("recorder_files_total");
    let err = failure(check_metrics(&doc, &fewer));
    assert!(err.contains("no service registers") && err.contains("recorder_files_total"), "{err}");
}

#[test]
fn the_dashboard_check_names_a_metric_that_does_not_exist() {
    let registered = assert_ok(metrics_registered(&service_sources()));
    let dashboard = read("deploy/grafana/confab.json");
    assert!(dashboard.contains("gateway_relay_latency_seconds_bucket"));
    let mut fewer = registered.clone();
    fewer.remove("gateway_relay_latency_seconds");
    let err = failure(check_dashboard(&dashboard, &fewer));
    assert!(err.contains("gateway_relay_latency_seconds_bucket"), "{err}");
}
