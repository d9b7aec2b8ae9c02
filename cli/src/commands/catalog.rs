//! `roster services` (Nacos's catalog: `GET /nacos/v1/ns/catalog/services`)
//! and `roster instances SERVICE` (`GET /roster/v1/console/service`: every
//! instance held, disabled ones included, with its responsible member).

use serde_json::Value;

use super::{borrowed, ServiceRef};
use crate::error::Result;
use crate::member::Member;
use crate::output::{cell, Report, Table};

/// What `roster services` lists.
#[derive(Debug, Clone)]
pub struct ServiceQuery {
    /// Namespace id.
    pub namespace: String,
    /// Only groups containing this text.
    pub group: Option<String>,
    /// Only names containing this text.
    pub name: Option<String>,
    /// Page number, from 1.
    pub page: u32,
    /// Services per page.
    pub page_size: u32,
}

/// `roster services`.
pub async fn services(member: &Member, q: &ServiceQuery) -> Result<Report> {
    let (page, size) = (q.page.to_string(), q.page_size.to_string());
    let mut params =
        vec![("namespaceId", q.namespace.as_str()), ("pageNo", page.as_str()), ("pageSize", size.as_str())];
    if let Some(g) = &q.group {
        params.push(("groupNameParam", g));
    }
    if let Some(n) = &q.name {
        params.push(("serviceNameParam", n));
    }
    let answer = member.get("/nacos/v1/ns/catalog/services", &params).await?;
    let list = answer["serviceList"].as_array().cloned().unwrap_or_default();
    let mut table = Table::new(&["SERVICE", "GROUP", "CLUSTERS", "INSTANCES", "HEALTHY", "PROTECTED"]);
    let count = answer["count"].as_u64().unwrap_or(0);
    table.note(format!("{count} services in namespace {} (page {} of {} per page)", q.namespace, q.page, q.page_size));
    for s in &list {
        let protected = if s["triggerFlag"].as_str() == Some("true") { "yes" } else { "no" };
        table.row(vec![
            cell(&s["name"]),
            cell(&s["groupName"]),
            cell(&s["clusterCount"]),
            cell(&s["ipCount"]),
            cell(&s["healthyInstanceCount"]),
            protected.to_owned(),
        ]);
    }
    Ok(Report { data: answer, table })
}

/// `roster instances SERVICE`.
pub async fn instances(member: &Member, service: &ServiceRef) -> Result<Report> {
    let params = service.params();
    let answer = member.get("/roster/v1/console/service", &borrowed(&params)).await?;
    let mut table =
        Table::new(&["INSTANCE", "CLUSTER", "HEALTHY", "ENABLED", "WEIGHT", "KIND", "RESPONSIBLE", "METADATA"]);
    let list = answer["instances"].as_array().cloned().unwrap_or_default();
    table.note(format!("{} instances of {} in namespace {}", list.len(), service.grouped(), service.namespace));
    for i in &list {
        let kind = match (i["ephemeral"].as_bool(), i["clientKind"].as_str()) {
            (Some(false), _) => "persistent",
            (_, Some("connection")) => "ephemeral/grpc",
            _ => "ephemeral/http",
        };
        let metadata = i["metadata"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        table.row(vec![
            format!("{}:{}", cell(&i["ip"]), cell(&i["port"])),
            cell(&i["clusterName"]),
            yes_no(&i["healthy"]),
            yes_no(&i["enabled"]),
            cell(&i["weight"]),
            kind.to_owned(),
            cell(&i["responsible"]),
            if metadata.is_empty() { "-".into() } else { metadata },
        ]);
    }
    Ok(Report { data: answer, table })
}

fn yes_no(v: &Value) -> String {
    match v.as_bool() {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}
