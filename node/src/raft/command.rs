//! The replicated commands and the persistent data they change.
//!
//! [`PersistentData`] is the state machine's content: every service that Raft
//! knows (explicit settings and persistent instances). [`PersistentData::apply`]
//! is a pure function from a command to a change and an outcome, so that every
//! node decides the same thing for the same log entry: validation that depends
//! on replicated state (a service that exists already, one that still has
//! persistent instances) happens here, not in the handler that proposed it.
//!
//! What Raft cannot see (ephemeral instances, owned by Distro) is checked by
//! the handler before it proposes (`api/http/service.rs`).
//!
//! Raft also holds the overrides of ephemeral instances
//! ([`crate::naming::overlay`]): edits of their weight, enabled flag and
//! metadata, kept with the service they belong to, so that every member
//! lays the same edit over the same instance and an edit outlives restarts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::naming::overlay::InstanceOverride;
use crate::naming::{Instance, InstanceKey, ServiceKey, ServiceMeta};

/// One write through Raft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Command {
    /// Adds or replaces a persistent instance.
    RegisterInstance {
        /// The service.
        service: ServiceKey,
        /// The instance (its `ephemeral` flag is forced to false).
        instance: Instance,
    },
    /// Removes a persistent instance; removing an absent one is not an error (Nacos).
    DeregisterInstance {
        /// The service.
        service: ServiceKey,
        /// Which instance.
        instance: InstanceKey,
    },
    /// Changes some fields of an existing persistent instance; absent fields keep their value.
    UpdateInstance {
        /// The service.
        service: ServiceKey,
        /// Which instance.
        instance: InstanceKey,
        /// New weight.
        weight: Option<f64>,
        /// New health.
        healthy: Option<bool>,
        /// New enabled flag.
        enabled: Option<bool>,
        /// New metadata (replaces all of it).
        metadata: Option<BTreeMap<String, String>>,
    },
    /// A health check's verdict; ignored when the instance is gone or already so.
    SetHealth {
        /// The service.
        service: ServiceKey,
        /// Which instance.
        instance: InstanceKey,
        /// The observed health.
        healthy: bool,
    },
    /// Creates a service explicitly; a conflict if Raft holds explicit settings for it.
    CreateService {
        /// The service.
        service: ServiceKey,
        /// Its settings.
        meta: ServiceMeta,
    },
    /// Changes a service's settings; absent fields keep their value.
    UpdateService {
        /// The service.
        service: ServiceKey,
        /// New protect threshold.
        protect_threshold: Option<f32>,
        /// New metadata (replaces all of it).
        metadata: Option<BTreeMap<String, String>>,
        /// New selector.
        selector: Option<serde_json::Value>,
    },
    /// Deletes a service's explicit settings; not found if Raft knows nothing of
    /// it, a conflict while it has persistent instances.
    DeleteService {
        /// The service.
        service: ServiceKey,
    },
    /// Deletes a service its proposer holds as an emptied one (implicit, no
    /// instances; see [`crate::naming::cleaner`]): every member forgets it at
    /// once. Raft holding nothing for it is fine; settings or persistent
    /// instances it holds by now are handled as by `DeleteService`.
    DeleteEmptiedService {
        /// The service.
        service: ServiceKey,
    },
    /// Merges an edit into the override of an ephemeral instance (which Raft
    /// cannot see: the proposer checked that it exists).
    OverrideInstance {
        /// The service.
        service: ServiceKey,
        /// Which instance.
        instance: InstanceKey,
        /// The edit.
        edit: InstanceOverride,
    },
    /// Drops the override of an instance (the leader's cleaner: its instance
    /// has been gone for a while); absent is fine.
    ClearOverride {
        /// The service.
        service: ServiceKey,
        /// Which instance.
        instance: InstanceKey,
    },
}

impl Command {
    /// The service the command changes.
    pub fn service(&self) -> &ServiceKey {
        match self {
            Command::RegisterInstance { service, .. }
            | Command::DeregisterInstance { service, .. }
            | Command::UpdateInstance { service, .. }
            | Command::SetHealth { service, .. }
            | Command::CreateService { service, .. }
            | Command::UpdateService { service, .. }
            | Command::DeleteService { service }
            | Command::DeleteEmptiedService { service }
            | Command::OverrideInstance { service, .. }
            | Command::ClearOverride { service, .. } => service,
        }
    }

    /// Whether, once applied, the service is gone from Raft and every
    /// member forgets it if it holds nothing (no settings kept, deleted or
    /// emptied, stay listed).
    pub fn deletes_service(&self) -> bool {
        matches!(self, Command::DeleteService { .. } | Command::DeleteEmptiedService { .. })
    }
}

/// Why a command was refused when applied. Replicated (it is the log entry's
/// response), so it is plain data; [`ApplyError::into_error`] gives the
/// node's error with the same Nacos code as before Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "camelCase")]
pub enum ApplyError {
    /// The service or instance does not exist.
    NotFound(String),
    /// The command conflicts with the current state.
    Conflict(String),
}

impl ApplyError {
    /// The node error a client sees.
    pub fn into_error(self) -> Error {
        match self {
            ApplyError::NotFound(m) => Error::NotFound(m),
            ApplyError::Conflict(m) => Error::Conflict(m),
        }
    }
}

/// The response of one applied log entry.
pub type ApplyResult = Result<(), ApplyError>;

/// What Raft holds for one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceRecord {
    /// Explicit settings (created through the API); `None` for a service that
    /// exists only through its persistent instances.
    pub meta: Option<ServiceMeta>,
    /// Persistent instances by key.
    pub instances: BTreeMap<InstanceKey, Instance>,
    /// Overrides of ephemeral instances by key.
    pub overrides: BTreeMap<InstanceKey, InstanceOverride>,
}

impl ServiceRecord {
    /// No settings and no persistent instances: as a service, Raft does not
    /// know it (it may still hold overrides for it).
    fn is_empty(&self) -> bool {
        self.meta.is_none() && self.instances.is_empty()
    }

    /// Nothing at all to keep.
    fn holds_nothing(&self) -> bool {
        self.is_empty() && self.overrides.is_empty()
    }
}

/// One service in serialized form (snapshots and the state table): instances
/// as a list, because JSON maps need string keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The service.
    pub service: ServiceKey,
    /// Explicit settings, if any.
    pub meta: Option<ServiceMeta>,
    /// Persistent instances, sorted by key.
    pub instances: Vec<Instance>,
    /// Overrides of ephemeral instances, sorted by instance (absent in data
    /// written before overrides existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<(InstanceKey, InstanceOverride)>,
}

/// Everything Raft replicates: the services it knows, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistentData {
    services: BTreeMap<ServiceKey, ServiceRecord>,
}

impl PersistentData {
    /// Rebuilds the data from serialized entries (later duplicates win).
    pub fn from_entries(entries: impl IntoIterator<Item = ServiceEntry>) -> PersistentData {
        let mut services = BTreeMap::new();
        for e in entries {
            let instances = e
                .instances
                .into_iter()
                .map(|i| (i.key(), Instance { ephemeral: false, ..i }))
                .collect::<BTreeMap<_, _>>();
            let meta = e.meta.map(|m| ServiceMeta { explicit: true, ..m });
            let overrides = e.overrides.into_iter().filter(|(_, o)| !o.is_empty()).collect();
            let record = ServiceRecord { meta, instances, overrides };
            if !record.holds_nothing() {
                services.insert(e.service, record);
            }
        }
        PersistentData { services }
    }

    /// One service in serialized form, or `None` when Raft holds nothing for it.
    pub fn entry(&self, key: &ServiceKey) -> Option<ServiceEntry> {
        self.services.get(key).map(|r| ServiceEntry {
            service: key.clone(),
            meta: r.meta.clone(),
            instances: r.instances.values().cloned().collect(),
            overrides: r.overrides.iter().map(|(k, o)| (k.clone(), o.clone())).collect(),
        })
    }

    /// Every service in serialized form, sorted.
    pub fn entries(&self) -> Vec<ServiceEntry> {
        self.services.keys().filter_map(|k| self.entry(k)).collect()
    }

    /// The record of one service.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceRecord> {
        self.services.get(key)
    }

    /// Number of services Raft knows.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether Raft knows no service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Every instance with an override, with its service (for the cleaner).
    pub fn overridden(&self) -> Vec<(ServiceKey, InstanceKey)> {
        self.services.iter().flat_map(|(k, r)| r.overrides.keys().map(move |i| (k.clone(), i.clone()))).collect()
    }

    /// Every persistent instance with its service (for health checks).
    pub fn instances(&self) -> Vec<(ServiceKey, Instance)> {
        self.services.iter().flat_map(|(k, r)| r.instances.values().map(move |i| (k.clone(), i.clone()))).collect()
    }

    /// Applies `command`. On success the command's service may have changed
    /// (the caller mirrors it into the naming store); on error nothing changed.
    pub fn apply(&mut self, command: &Command) -> ApplyResult {
        let key = command.service();
        let mut record = self.services.get(key).cloned().unwrap_or_default();
        match command {
            Command::RegisterInstance { instance, .. } => {
                record.instances.insert(instance.key(), Instance { ephemeral: false, ..instance.clone() });
            }
            Command::DeregisterInstance { instance, .. } => {
                record.instances.remove(instance);
            }
            Command::UpdateInstance { instance, weight, healthy, enabled, metadata, .. } => {
                let Some(current) = record.instances.get_mut(instance) else {
                    return Err(ApplyError::NotFound(format!(
                        "instance not found: {instance} in {}",
                        key.grouped_name()
                    )));
                };
                if let Some(w) = weight {
                    current.weight = *w;
                }
                if let Some(h) = healthy {
                    current.healthy = *h;
                }
                if let Some(e) = enabled {
                    current.enabled = *e;
                }
                if let Some(m) = metadata {
                    current.metadata = m.clone();
                }
            }
            Command::SetHealth { instance, healthy, .. } => match record.instances.get_mut(instance) {
                Some(current) => current.healthy = *healthy,
                None => return Ok(()),
            },
            Command::CreateService { meta, .. } => {
                if record.meta.is_some() {
                    return Err(ApplyError::Conflict(format!(
                        "specified service already exists, serviceName : {}",
                        key.grouped_name()
                    )));
                }
                record.meta = Some(ServiceMeta { explicit: true, ..meta.clone() });
            }
            Command::UpdateService { protect_threshold, metadata, selector, .. } => {
                // The proposer checked that the service exists (it may exist
                // only through ephemeral instances, which Raft cannot see).
                let mut meta = record.meta.clone().unwrap_or_default();
                if let Some(t) = protect_threshold {
                    meta.protect_threshold = *t;
                }
                if let Some(m) = metadata {
                    meta.metadata = m.clone();
                }
                if let Some(s) = selector {
                    meta.selector = s.clone();
                }
                record.meta = Some(ServiceMeta { explicit: true, ..meta });
            }
            Command::DeleteService { .. } | Command::DeleteEmptiedService { .. } => {
                let emptied = matches!(command, Command::DeleteEmptiedService { .. });
                if record.is_empty() && !emptied {
                    return Err(ApplyError::NotFound(format!("service {} not found!", key.grouped_name())));
                }
                if !record.instances.is_empty() {
                    return Err(ApplyError::Conflict(format!(
                        "Service {} is not empty, can't be delete. Please unregister instance first",
                        key.grouped_name()
                    )));
                }
                record.meta = None;
            }
            Command::OverrideInstance { instance, edit, .. } => {
                let held = record.overrides.entry(instance.clone()).or_default();
                held.merge(edit);
                if held.is_empty() {
                    record.overrides.remove(instance);
                }
            }
            Command::ClearOverride { instance, .. } => {
                record.overrides.remove(instance);
            }
        }
        if record.holds_nothing() {
            self.services.remove(key);
        } else {
            self.services.insert(key.clone(), record);
        }
        Ok(())
    }

    /// Keys of every service Raft knows.
    pub fn keys(&self) -> BTreeSet<ServiceKey> {
        self.services.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::store::tests::{inst, svc};

    fn register(name: &str, i: &Instance) -> Command {
        Command::RegisterInstance { service: svc(name), instance: i.clone() }
    }

    #[test]
    fn registered_instances_are_persistent_and_replaced_by_key() {
        let mut d = PersistentData::default();
        d.apply(&register("a", &inst("10.0.0.1", 80))).expect("apply");
        d.apply(&register("a", &Instance { weight: 3.0, ..inst("10.0.0.1", 80) })).expect("apply");
        let r = d.service(&svc("a")).expect("service");
        assert_eq!(r.instances.len(), 1);
        let i = r.instances.values().next().expect("instance");
        assert!(!i.ephemeral);
        assert_eq!(i.weight, 3.0);
        assert!(r.meta.is_none(), "an implicit service has no explicit settings");
    }

    #[test]
    fn deregistering_the_last_instance_forgets_an_implicit_service_only() {
        let mut d = PersistentData::default();
        let i = inst("10.0.0.1", 80);
        d.apply(&register("a", &i)).expect("apply");
        d.apply(&Command::DeregisterInstance { service: svc("a"), instance: i.key() }).expect("apply");
        assert!(d.is_empty());
        // Absent: not an error, as in Nacos.
        d.apply(&Command::DeregisterInstance { service: svc("a"), instance: i.key() }).expect("apply");
        d.apply(&Command::CreateService { service: svc("b"), meta: ServiceMeta::default() }).expect("create");
        d.apply(&register("b", &i)).expect("apply");
        d.apply(&Command::DeregisterInstance { service: svc("b"), instance: i.key() }).expect("apply");
        assert!(d.service(&svc("b")).is_some_and(|r| r.meta.is_some()));
    }

    #[test]
    fn service_lifecycle_errors_are_decided_by_replicated_state() {
        let mut d = PersistentData::default();
        let create = Command::CreateService { service: svc("a"), meta: ServiceMeta::default() };
        d.apply(&create).expect("create");
        let before = d.clone();
        assert!(matches!(d.apply(&create), Err(ApplyError::Conflict(m)) if m.contains("already exists")));
        assert_eq!(d, before, "a refused command changes nothing");
        d.apply(&register("a", &inst("10.0.0.1", 80))).expect("apply");
        let delete = Command::DeleteService { service: svc("a") };
        assert!(matches!(d.apply(&delete), Err(ApplyError::Conflict(m)) if m.contains("not empty")));
        d.apply(&Command::DeregisterInstance { service: svc("a"), instance: inst("10.0.0.1", 80).key() })
            .expect("apply");
        d.apply(&delete).expect("delete");
        assert!(d.is_empty());
        assert!(matches!(d.apply(&delete), Err(ApplyError::NotFound(_))));
        assert!(matches!(ApplyError::NotFound("x".into()).into_error(), Error::NotFound(_)));
    }

    #[test]
    fn updates_keep_absent_fields() {
        let mut d = PersistentData::default();
        let meta = ServiceMeta { protect_threshold: 0.5, ..ServiceMeta::default() };
        d.apply(&Command::CreateService { service: svc("a"), meta }).expect("create");
        let mut md = BTreeMap::new();
        md.insert("k".to_string(), "v".to_string());
        d.apply(&Command::UpdateService {
            service: svc("a"),
            protect_threshold: None,
            metadata: Some(md.clone()),
            selector: None,
        })
        .expect("update");
        let m = d.service(&svc("a")).and_then(|r| r.meta.clone()).expect("meta");
        assert_eq!((m.protect_threshold, &m.metadata, m.explicit), (0.5, &md, true));

        let i = inst("10.0.0.1", 80);
        let update = Command::UpdateInstance {
            service: svc("a"),
            instance: i.key(),
            weight: Some(2.0),
            healthy: None,
            enabled: Some(false),
            metadata: None,
        };
        assert!(matches!(d.apply(&update), Err(ApplyError::NotFound(_))));
        d.apply(&register("a", &i)).expect("apply");
        d.apply(&update).expect("update");
        let got = d.service(&svc("a")).and_then(|r| r.instances.get(&i.key()).cloned()).expect("instance");
        assert_eq!((got.weight, got.enabled, got.healthy), (2.0, false, true));
    }

    #[test]
    fn health_verdicts_touch_existing_instances_only() {
        let mut d = PersistentData::default();
        let i = inst("10.0.0.1", 80);
        let set = |healthy| Command::SetHealth { service: svc("a"), instance: i.key(), healthy };
        d.apply(&set(false)).expect("absent is fine");
        assert!(d.is_empty(), "a verdict does not create anything");
        d.apply(&register("a", &i)).expect("apply");
        d.apply(&set(false)).expect("apply");
        assert!(!d.instances()[0].1.healthy);
    }

    #[test]
    fn entries_round_trip() {
        let mut d = PersistentData::default();
        d.apply(&Command::CreateService { service: svc("a"), meta: ServiceMeta::default() }).expect("create");
        d.apply(&register("b", &inst("10.0.0.1", 80))).expect("apply");
        d.apply(&register("b", &inst("10.0.0.2", 80))).expect("apply");
        let json = serde_json::to_string(&d.entries()).expect("json");
        let back: Vec<ServiceEntry> = serde_json::from_str(&json).expect("parse");
        assert_eq!(PersistentData::from_entries(back), d);
        let cmd = register("b", &inst("10.0.0.3", 1));
        let json = serde_json::to_string(&cmd).expect("json");
        assert_eq!(serde_json::from_str::<Command>(&json).expect("parse"), cmd);
    }

    fn heavier(weight: f64) -> InstanceOverride {
        InstanceOverride { weight: Some(weight), ..InstanceOverride::default() }
    }

    #[test]
    fn overrides_merge_clear_and_are_kept_without_the_service() {
        let mut d = PersistentData::default();
        let i = inst("10.0.0.1", 80);
        let edit = |e: InstanceOverride| Command::OverrideInstance { service: svc("a"), instance: i.key(), edit: e };
        d.apply(&edit(heavier(5.0))).expect("override");
        assert!(d.service(&svc("a")).is_some_and(|r| r.meta.is_none() && r.instances.is_empty()));
        let hidden = InstanceOverride { enabled: Some(false), ..InstanceOverride::default() };
        d.apply(&edit(hidden)).expect("override");
        let held = d.service(&svc("a")).and_then(|r| r.overrides.get(&i.key()).cloned()).expect("held");
        assert_eq!((held.weight, held.enabled), (Some(5.0), Some(false)), "a later edit is merged");
        assert_eq!(d.overridden(), vec![(svc("a"), i.key())]);
        assert!(
            matches!(d.apply(&Command::DeleteService { service: svc("a") }), Err(ApplyError::NotFound(_))),
            "overrides are not a service"
        );
        let clear = Command::ClearOverride { service: svc("a"), instance: i.key() };
        d.apply(&clear).expect("clear");
        assert!(d.is_empty());
        d.apply(&clear).expect("clearing what is not there is fine");
    }

    #[test]
    fn an_emptied_service_is_deleted_whatever_raft_holds_of_it() {
        let mut d = PersistentData::default();
        let emptied = Command::DeleteEmptiedService { service: svc("a") };
        assert!(emptied.deletes_service() && !register("a", &inst("10.0.0.1", 80)).deletes_service());
        d.apply(&emptied).expect("Raft holds nothing of it: fine");
        d.apply(&Command::CreateService { service: svc("a"), meta: ServiceMeta::default() }).expect("create");
        d.apply(&register("a", &inst("10.0.0.1", 80))).expect("apply");
        assert!(matches!(d.apply(&emptied), Err(ApplyError::Conflict(_))), "not empty by now");
        d.apply(&Command::DeregisterInstance { service: svc("a"), instance: inst("10.0.0.1", 80).key() })
            .expect("apply");
        d.apply(&emptied).expect("settings created meanwhile are deleted");
        assert!(d.is_empty());
    }

    #[test]
    fn entries_carry_overrides_and_read_data_written_before_them() {
        let mut d = PersistentData::default();
        let i = inst("10.0.0.1", 80);
        d.apply(&Command::OverrideInstance { service: svc("a"), instance: i.key(), edit: heavier(2.0) }).expect("ok");
        let json = serde_json::to_string(&d.entries()).expect("json");
        let back: Vec<ServiceEntry> = serde_json::from_str(&json).expect("parse");
        assert_eq!(PersistentData::from_entries(back), d);
        let old =
            r#"[{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"b"},"meta":null,"instances":[]}]"#;
        let old: Vec<ServiceEntry> = serde_json::from_str(old).expect("an entry without overrides");
        assert!(old[0].overrides.is_empty());
        let mut plain = PersistentData::default();
        plain.apply(&register("b", &i)).expect("apply");
        let plain = serde_json::to_string(&plain.entries()).expect("json");
        assert!(
            plain.contains("instances") && !plain.contains("overrides"),
            "data without overrides is written as before: {plain}"
        );
    }
}
