//! Nacos's console catalog API: `GET /nacos/v1/ns/catalog/services` and
//! `GET /nacos/v1/ns/catalog/instances`, with the parameters and JSON
//! shapes of Nacos 2's `CatalogController` (`CatalogServiceV2Impl`), so
//! tools written for Nacos's console work against Roster too. The console's
//! service list is built on them.
//!
//! - `services`: `namespaceId`, `pageNo`, `pageSize`, `serviceNameParam`,
//!   `groupNameParam`, `hasIpCount` → `{"count", "serviceList": [{"name",
//!   "groupName", "clusterCount", "ipCount", "healthyInstanceCount",
//!   "triggerFlag"}]}`. Services are sorted by group, then name.
//! - `instances`: `namespaceId`, `serviceName` (or `group@@service`),
//!   `groupName`, `clusterName`, `pageNo`, `pageSize` → `{"count", "list":
//!   [instance]}`, each instance in the shape of Nacos's `Instance`.
//!
//! Where Roster differs: the name and group parameters match as plain
//! substrings (Nacos builds a regular expression from them, so `.` or `*`
//! in a search act as patterns there); `pageNo` and `pageSize` default to 1
//! and 10 instead of being required, and `clusterName` may be left out (all
//! clusters); `withInstances=true` is refused (Roster's console does not
//! use it). Counts include disabled instances, as Nacos's do; `triggerFlag`
//! is `"true"` when the healthy share is at or below the service's protect
//! threshold.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::api::http::params::Params;
use crate::api::http::service::{page_param, MAX_PAGE_SIZE};
use crate::api::ClientState;
use crate::error::{Error, Result};
use crate::naming::store::ServiceSummary;
use crate::naming::{validate, Instance, InstanceWire};

/// Page size when `pageSize` is absent (the Nacos console's own default).
const DEFAULT_PAGE_SIZE: usize = 10;

/// One service in [`ServiceList`] (Nacos's `ServiceView`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// The bare service name.
    pub name: String,
    /// Its group.
    pub group_name: String,
    /// Clusters its instances are in.
    pub cluster_count: usize,
    /// Instances, disabled ones included.
    pub ip_count: usize,
    /// Healthy instances.
    pub healthy_instance_count: usize,
    /// `"true"` when the protect threshold is reached (a string, as in Nacos).
    pub trigger_flag: String,
}

impl From<&ServiceSummary> for ServiceView {
    fn from(s: &ServiceSummary) -> Self {
        // Nacos compares healthy / ipCount <= threshold; with no instances
        // that is NaN, never true.
        let triggered = s.instances > 0 && (s.healthy as f64 / s.instances as f64) <= f64::from(s.protect_threshold);
        ServiceView {
            name: s.key.name.clone(),
            group_name: s.key.group.clone(),
            cluster_count: s.clusters,
            ip_count: s.instances,
            healthy_instance_count: s.healthy,
            trigger_flag: triggered.to_string(),
        }
    }
}

/// What `GET /nacos/v1/ns/catalog/services` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceList {
    /// Services matching the filters, over all pages.
    pub count: usize,
    /// The requested page.
    pub service_list: Vec<ServiceView>,
}

/// What `GET /nacos/v1/ns/catalog/instances` answers.
#[derive(Debug, Serialize)]
pub struct InstanceList {
    /// Instances of the service (in the cluster, if one was named).
    pub count: usize,
    /// The requested page.
    pub list: Vec<InstanceWire>,
}

/// `(pageNo, pageSize)`, each within range, defaulting to page 1 of 10.
pub(crate) fn page(p: &Params) -> Result<(usize, usize)> {
    let page_no = if p.get("pageNo").is_some() { page_param(p, "pageNo", i64::from(i32::MAX))? } else { 1 };
    let page_size =
        if p.get("pageSize").is_some() { page_param(p, "pageSize", MAX_PAGE_SIZE)? } else { DEFAULT_PAGE_SIZE };
    Ok((page_no, page_size))
}

/// The items of page `page_no` (from 1) of `page_size`.
fn page_of<T>(items: impl IntoIterator<Item = T>, page_no: usize, page_size: usize) -> Vec<T> {
    items.into_iter().skip(page_no.saturating_sub(1).saturating_mul(page_size)).take(page_size).collect()
}

/// The services of `summaries` whose name and group contain the given
/// texts (`None`: any), without empty ones when `non_empty`.
pub(crate) fn filter_services<'a>(
    summaries: &'a [ServiceSummary],
    name: Option<&'a str>,
    group: Option<&'a str>,
    non_empty: bool,
) -> impl Iterator<Item = &'a ServiceSummary> {
    summaries.iter().filter(move |s| {
        name.is_none_or(|n| s.key.name.contains(n))
            && group.is_none_or(|g| s.key.group.contains(g))
            && (!non_empty || s.instances > 0)
    })
}

/// `GET /nacos/v1/ns/catalog/services`.
pub async fn services(State(state): State<Arc<ClientState>>, p: Params) -> Result<Json<ServiceList>> {
    if p.bool("withInstances")? == Some(true) {
        return Err(Error::invalid("Param 'withInstances': true is not supported; list the instances per service."));
    }
    let namespace = validate::namespace(p.get("namespaceId"))?;
    let (page_no, page_size) = page(&p)?;
    let non_empty = p.bool("hasIpCount")?.unwrap_or(false);
    let summaries = state.store.service_summaries(&namespace);
    let matching: Vec<&ServiceSummary> =
        filter_services(&summaries, p.get("serviceNameParam"), p.get("groupNameParam"), non_empty).collect();
    let count = matching.len();
    let service_list = page_of(matching, page_no, page_size).into_iter().map(ServiceView::from).collect();
    Ok(Json(ServiceList { count, service_list }))
}

/// `GET /nacos/v1/ns/catalog/instances`.
pub async fn instances(State(state): State<Arc<ClientState>>, p: Params) -> Result<Json<InstanceList>> {
    let key = p.service_key()?;
    let (page_no, page_size) = page(&p)?;
    let cluster = p.get("clusterName").map(|c| validate::cluster(Some(c))).transpose()?;
    let all = state
        .store
        .catalog_instances(&key)
        .ok_or_else(|| Error::NotFound(format!("service {} is not found!", key.grouped_name())))?;
    let instances: Vec<&Instance> = all.iter().filter(|i| cluster.as_ref().is_none_or(|c| &i.cluster == c)).collect();
    if let Some(c) = &cluster {
        if instances.is_empty() {
            return Err(Error::NotFound(format!("cluster {c} is not found!")));
        }
    }
    let timeouts = state.store.timeouts();
    let count = instances.len();
    let list = page_of(instances, page_no, page_size).into_iter().map(|i| i.to_wire(&key, &timeouts)).collect();
    Ok(Json(InstanceList { count, list }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::ServiceKey;

    fn summary(group: &str, name: &str, instances: usize, healthy: usize, threshold: f32) -> ServiceSummary {
        ServiceSummary {
            key: ServiceKey::new("public", group, name),
            clusters: usize::from(instances > 0),
            instances,
            healthy,
            protect_threshold: threshold,
        }
    }

    #[test]
    fn filters_match_substrings_and_skip_empty_services_on_request() {
        let all = [
            summary("DEFAULT_GROUP", "orders", 2, 2, 0.0),
            summary("DEFAULT_GROUP", "orders-v2", 0, 0, 0.0),
            summary("payments", "ledger", 1, 0, 0.0),
        ];
        let names = |it: Vec<&ServiceSummary>| it.iter().map(|s| s.key.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(filter_services(&all, Some("order"), None, false).collect()), ["orders", "orders-v2"]);
        assert_eq!(names(filter_services(&all, Some("order"), None, true).collect()), ["orders"]);
        assert_eq!(names(filter_services(&all, None, Some("pay"), false).collect()), ["ledger"]);
        assert_eq!(names(filter_services(&all, Some("o.d"), None, false).collect()), Vec::<String>::new());
    }

    #[test]
    fn trigger_flag_follows_the_protect_threshold() {
        assert_eq!(ServiceView::from(&summary("g", "a", 4, 1, 0.3)).trigger_flag, "true");
        assert_eq!(ServiceView::from(&summary("g", "a", 4, 2, 0.3)).trigger_flag, "false");
        assert_eq!(ServiceView::from(&summary("g", "a", 0, 0, 0.3)).trigger_flag, "false", "no instances: NaN");
    }

    #[test]
    fn pages_count_from_one_and_default_to_ten() {
        let p = Params::parse(Some("pageNo=2&pageSize=2"), None).expect("params");
        assert_eq!(page(&p).expect("page"), (2, 2));
        assert_eq!(page_of(1..=5, 2, 2), [3, 4]);
        assert_eq!(page_of(1..=5, 4, 2), Vec::<i32>::new());
        assert_eq!(page(&Params::default()).expect("defaults"), (1, 10));
        for bad in ["pageNo=0", "pageSize=0", "pageSize=10001", "pageNo=x"] {
            assert!(page(&Params::parse(Some(bad), None).expect("params")).is_err(), "{bad}");
        }
    }
}
