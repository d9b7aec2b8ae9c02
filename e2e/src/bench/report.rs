//! The human-readable table: one line per figure, latency summaries on one
//! line each.

use serde_json::Value;

/// Renders the scenarios' results as a table.
pub fn table(scenarios: &[Value]) -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for s in scenarios {
        let name = s["name"].as_str().unwrap_or("?").to_owned();
        flatten(&name, "", s, &mut rows);
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(6);
    let mut out = format!("{:<w0$}  {:<w1$}  {}\n", "SCENARIO", "FIGURE", "VALUE");
    for (a, b, c) in rows {
        out.push_str(&format!("{a:<w0$}  {b:<w1$}  {c}\n"));
    }
    out
}

fn is_latency(v: &Value) -> bool {
    v.get("p50_ms").is_some() && v.get("p99_ms").is_some()
}

fn flatten(name: &str, prefix: &str, v: &Value, rows: &mut Vec<(String, String, String)>) {
    let Value::Object(map) = v else { return };
    for (k, x) in map {
        if prefix.is_empty() && k == "name" {
            continue;
        }
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match x {
            Value::Null => {}
            Value::Object(_) if is_latency(x) => rows.push((
                name.to_owned(),
                key,
                format!(
                    "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={})",
                    x["p50_ms"], x["p90_ms"], x["p99_ms"], x["max_ms"], x["count"]
                ),
            )),
            Value::Object(_) => flatten(name, &key, x, rows),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Object(_) => flatten(name, &format!("{key}[{i}]"), item, rows),
                        other => rows.push((name.to_owned(), format!("{key}[{i}]"), plain(other))),
                    }
                }
            }
            other => rows.push((name.to_owned(), key, plain(other))),
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_nested_figures() {
        let t = table(&[json!({
            "name": "register", "sent": 10, "first_error": null,
            "latency": {"count": 10, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0, "mean_ms": 1.5},
            "nodes": [{"member": "a", "rss_mib": 1.5}],
        })]);
        assert!(t.contains("register  sent"), "{t}");
        assert!(t.contains("p50 1.0 ms, p90 2.0 ms, p99 3.0 ms, max 4.0 ms (n=10)"), "{t}");
        assert!(t.contains("nodes[0].rss_mib"), "{t}");
        assert!(!t.contains("first_error"), "{t}");
    }
}
