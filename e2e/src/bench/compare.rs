//! The side-by-side summary: for every headline figure of every step, the
//! median over the repetitions for each system and Roster's ratio to each
//! peer (`roster / peer`; whether higher or lower is better is said per
//! figure).

use serde_json::{json, Value};

/// One compared figure: where it is in a step's JSON.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// The step it belongs to.
    pub step: &'static str,
    /// What the reader sees.
    pub label: &'static str,
    /// Keys leading to it in the step's JSON.
    pub path: &'static [&'static str],
    /// Whether a lower value is the better one (latencies, errors, memory).
    pub lower_is_better: bool,
}

const fn fig(step: &'static str, label: &'static str, path: &'static [&'static str], lower: bool) -> Figure {
    Figure { step, label, path, lower_is_better: lower }
}

/// The figures compared, in table order.
pub const FIGURES: &[Figure] = &[
    fig("grpc-register", "throughput /s", &["throughput_per_sec"], false),
    fig("grpc-register", "p99 ms", &["latency", "p99_ms"], true),
    fig("grpc-register", "errors", &["errors"], true),
    fig("grpc-register", "on every node after, s", &["replicated_secs"], true),
    fig("grpc-query", "throughput /s", &["throughput_per_sec"], false),
    fig("grpc-query", "p99 ms", &["latency", "p99_ms"], true),
    fig("grpc-query", "errors", &["errors"], true),
    fig("http-register", "throughput /s", &["throughput_per_sec"], false),
    fig("http-register", "p99 ms", &["latency", "p99_ms"], true),
    fig("http-register", "errors", &["errors"], true),
    fig("http-query", "throughput /s", &["throughput_per_sec"], false),
    fig("http-query", "p99 ms", &["latency", "p99_ms"], true),
    fig("http-query", "errors", &["errors"], true),
    fig("convergence", "A -> B and C p50 ms", &["visible_on_all", "p50_ms"], true),
    fig("convergence", "A -> B and C p99 ms", &["visible_on_all", "p99_ms"], true),
    fig("convergence", "errors", &["errors"], true),
    fig("push", "A -> subscriber on B p50 ms", &["latency", "p50_ms"], true),
    fig("push", "A -> subscriber on B p99 ms", &["latency", "p99_ms"], true),
    fig("push", "errors", &["errors"], true),
    fig("persistent", "throughput /s", &["throughput_per_sec"], false),
    fig("persistent", "p99 ms", &["latency", "p99_ms"], true),
    fig("persistent", "errors", &["errors"], true),
    fig("memory", "load instances/s", &["load", "instances_per_sec"], false),
    fig("memory", "load errors", &["load", "errors"], true),
    fig("memory", "settled B/instance (max member)", &["max_bytes_per_instance"], true),
    fig("memory", "peak B/instance (max member)", &["max_peak_bytes_per_instance"], true),
    fig("bootstrap", "new member holds all, s", &["all_instances_secs"], true),
];

/// The systems, in column order.
pub const SYSTEMS: [&str; 3] = ["roster", "rnacos", "etcd"];

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

fn lookup<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// One row per figure that any system has: each system's samples and
/// median, and Roster's ratio to r-nacos and to etcd. `runs` are
/// `{system, repetition, steps: [{name, ...}]}`.
pub fn summary(runs: &[Value]) -> Vec<Value> {
    let mut rows = Vec::new();
    for f in FIGURES {
        let mut values = serde_json::Map::new();
        let mut medians = std::collections::HashMap::new();
        for system in SYSTEMS {
            let samples: Vec<f64> = runs
                .iter()
                .filter(|r| r["system"] == system)
                .filter_map(|r| r["steps"].as_array()?.iter().find(|s| s["name"] == f.step))
                .filter_map(|s| lookup(s, f.path)?.as_f64())
                .collect();
            if let Some(m) = median(&samples) {
                medians.insert(system, m);
                values.insert(system.into(), json!({"median": m, "samples": samples}));
            }
        }
        if values.is_empty() {
            continue;
        }
        let ratio = |peer: &str| match (medians.get("roster"), medians.get(peer)) {
            (Some(r), Some(p)) if *p != 0.0 => Some((r / p * 100.0).round() / 100.0),
            _ => None,
        };
        rows.push(json!({
            "step": f.step, "figure": f.label, "lower_is_better": f.lower_is_better, "values": values,
            "roster_vs_rnacos": ratio("rnacos"), "roster_vs_etcd": ratio("etcd"),
        }));
    }
    rows
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.abs() >= 100.0 || x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn ratio(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.2}x"))
}

/// The summary rows as a table: medians per system and the ratios.
pub fn table(rows: &[Value]) -> String {
    let head = ["STEP", "FIGURE", "ROSTER", "RNACOS", "ROSTER/RNACOS", "ETCD", "ROSTER/ETCD"];
    let mut lines: Vec<[String; 7]> = vec![head.map(str::to_owned)];
    for r in rows {
        let m = |s: &str| number(&r["values"][s]["median"]);
        let better = if r["lower_is_better"] == true { " (lower better)" } else { "" };
        lines.push([
            r["step"].as_str().unwrap_or("").to_owned(),
            format!("{}{better}", r["figure"].as_str().unwrap_or("")),
            m("roster"),
            m("rnacos"),
            ratio(&r["roster_vs_rnacos"]),
            m("etcd"),
            ratio(&r["roster_vs_etcd"]),
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let run = |system: &str, tput: f64| json!({"system": system, "steps": [{"name": "persistent", "throughput_per_sec": tput, "errors": 0}]});
        let runs =
            [run("roster", 100.0), run("roster", 300.0), run("roster", 200.0), run("etcd", 400.0), run("rnacos", 50.0)];
        let rows = summary(&runs);
        let tput = rows.iter().find(|r| r["step"] == "persistent" && r["figure"] == "throughput /s").expect("row");
        assert_eq!(tput["values"]["roster"]["median"], 200.0);
        assert_eq!(tput["roster_vs_etcd"], 0.5);
        assert_eq!(tput["roster_vs_rnacos"], 4.0);
        // Figures no run has are left out; a zero peer value gives no ratio.
        assert!(rows.iter().all(|r| r["step"] == "persistent"));
        let errors = rows.iter().find(|r| r["figure"] == "errors").expect("errors row");
        assert_eq!(errors["roster_vs_etcd"], Value::Null);
        let t = table(&rows);
        assert!(t.contains("ROSTER/ETCD") && t.contains("0.50x") && t.contains("4.00x"), "{t}");
    }
}
