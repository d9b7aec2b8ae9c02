//! `roster status` (the member table) and `roster raft` (leader, voters,
//! learners, indices), both from one member's aggregated cluster view
//! (`GET /roster/v1/cluster`): it reads every member's status with
//! a short timeout, so one dead member shows as unreachable instead of
//! stalling the command.

use serde_json::{json, Value};

use crate::error::Result;
use crate::member::Member;
use crate::output::{cell, Report, Table};

/// The cluster view of the member.
async fn view(member: &Member) -> Result<Value> {
    member.get("/roster/v1/cluster", &[]).await
}

fn members(view: &Value) -> &[Value] {
    view["members"].as_array().map_or(&[], Vec::as_slice)
}

/// `roster status`.
pub async fn status(member: &Member) -> Result<Report> {
    let view = view(member).await?;
    let leader = view["leader"].as_str().unwrap_or("");
    let mut table = Table::new(&[
        "MEMBER",
        "STATE",
        "READY",
        "SNAPSHOT",
        "CLIENTS",
        "INSTANCES",
        "RAFT",
        "TERM",
        "COMMIT",
        "APPLIED",
    ]);
    table.note(format!("leader: {}", if leader.is_empty() { "none" } else { leader }));
    for m in members(&view) {
        let address = m["address"].as_str().unwrap_or("?").to_owned();
        let s = &m["status"];
        if s.is_null() {
            let why = m["error"].as_str().unwrap_or("no status");
            let mut row = vec![address, cell(&m["state"]), "-".into(), format!("unreachable: {why}")];
            row.extend(std::iter::repeat_n("-".to_owned(), 6));
            table.row(row);
            continue;
        }
        let distro = &s["distro"];
        let raft = &s["raft"];
        let snapshot = match (distro["initialized"].as_bool(), distro["snapshotSource"].as_str()) {
            (Some(true), Some(source)) => format!("from {source}"),
            (Some(true), None) => "loaded".to_owned(),
            (Some(false), _) => "loading".to_owned(),
            (None, _) => "-".to_owned(),
        };
        let role = match raft["role"].as_str() {
            Some(r) if address == leader && r == "Leader" => "Leader*".to_owned(),
            _ => cell(&raft["role"]),
        };
        table.row(vec![
            address,
            cell(&m["state"]),
            if s["ready"].as_bool() == Some(true) { "yes".into() } else { "no".into() },
            snapshot,
            cell(&distro["clients"]),
            cell(&distro["instances"]),
            role,
            cell(&raft["term"]),
            cell(&raft["committedIndex"]),
            cell(&raft["appliedIndex"]),
        ]);
    }
    Ok(Report { data: view, table })
}

/// `roster raft`.
pub async fn raft(member: &Member) -> Result<Report> {
    let view = view(member).await?;
    let all = members(&view);
    // Voters and learners as the leader reports them (else the serving member).
    let leader = view["leader"].as_str().map(str::to_owned);
    let reporter = all
        .iter()
        .find(|m| m["address"].as_str() == leader.as_deref())
        .or_else(|| all.iter().find(|m| m["serving"].as_bool() == Some(true)))
        .map(|m| &m["status"]["raft"])
        .filter(|r| !r.is_null());
    let list = |key: &str| -> Vec<Value> { reporter.and_then(|r| r[key].as_array()).cloned().unwrap_or_default() };
    let (voters, learners) = (list("voters"), list("learners"));
    let rows: Vec<Value> = all
        .iter()
        .map(|m| {
            let r = &m["status"]["raft"];
            json!({
                "address": m["address"], "role": r["role"], "term": r["term"], "lastLogIndex": r["lastLogIndex"],
                "committedIndex": r["committedIndex"], "appliedIndex": r["appliedIndex"],
                "snapshotIndex": r["snapshotIndex"], "error": m["error"],
            })
        })
        .collect();
    let data = json!({
        "leader": leader, "term": reporter.map(|r| r["term"].clone()), "voters": voters, "learners": learners,
        "members": rows,
    });
    let names =
        |v: &[Value]| if v.is_empty() { "none".to_owned() } else { v.iter().map(cell).collect::<Vec<_>>().join(", ") };
    let mut table = Table::new(&["MEMBER", "ROLE", "TERM", "LAST LOG", "COMMIT", "APPLIED", "SNAPSHOT"]);
    table.note(format!("leader:   {}", leader.as_deref().unwrap_or("none")));
    table.note(format!("voters:   {}", names(&voters)));
    table.note(format!("learners: {}", names(&learners)));
    for row in &rows {
        if row["role"].is_null() {
            let why = format!("unreachable: {}", row["error"].as_str().unwrap_or("no Raft status"));
            table.row(vec![cell(&row["address"]), why, "-".into(), "-".into(), "-".into(), "-".into(), "-".into()]);
            continue;
        }
        table.row(
            ["address", "role", "term", "lastLogIndex", "committedIndex", "appliedIndex", "snapshotIndex"]
                .iter()
                .map(|k| cell(&row[*k]))
                .collect(),
        );
    }
    Ok(Report { data, table })
}
