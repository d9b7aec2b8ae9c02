//! Instance-metadata overrides: edits of an ephemeral instance's weight,
//! enabled flag and metadata made through the API (a console, an operator's
//! `PUT /nacos/v1/ns/instance`), kept apart from what the instance's client
//! publishes and laid over it wherever the instance is shown.
//!
//! Why apart: a client owns what it publishes and publishes it again
//! whenever it likes (a gRPC SDK re-registers after every reconnect, an
//! HTTP client re-registers when its beat is refused). An edit written into
//! the published instance would be undone by the next registration; as an
//! override it survives, as in Nacos 2
//! (`NamingMetadataOperateService.updateInstanceMetadata`, laid over by
//! `InstanceUtil.updateInstanceMetadata`).
//!
//! Overrides are Raft data (see `raft::command`), keyed by service and
//! `ip#port#cluster`, so every member lays the same edit over the same
//! instance and an edit outlives restarts; the Raft leader clears one some
//! time after its instance is gone (`raft::override_cleaner`). Only
//! ephemeral instances get overrides: persistent ones are Raft data
//! already, and an edit changes them directly.
//!
//! The metadata part is a patch: a key set to a value shows that value, a
//! key set to `None` is hidden, and keys the patch does not name show what
//! the client publishes. Nacos's override only adds keys; the removals let
//! an edit that drops a key (a v1 `PUT` with the full new metadata, the v2
//! batch delete) keep it dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Instance;

/// What an edit changes of an instance, laid over what its client
/// publishes. Absent parts show the published values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceOverride {
    /// The weight shown instead of the published one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// The enabled flag shown instead of the published one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Metadata keys shown with these values (`None`: not shown at all).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Option<String>>,
}

impl InstanceOverride {
    /// Whether it changes nothing (and need not be kept).
    pub fn is_empty(&self) -> bool {
        self.weight.is_none() && self.enabled.is_none() && self.metadata.is_empty()
    }

    /// `instance` as shown with this override laid over it.
    pub fn lay_over(&self, instance: &mut Instance) {
        if let Some(weight) = self.weight {
            instance.weight = weight;
        }
        if let Some(enabled) = self.enabled {
            instance.enabled = enabled;
        }
        for (key, value) in &self.metadata {
            match value {
                Some(value) => instance.metadata.insert(key.clone(), value.clone()),
                None => instance.metadata.remove(key),
            };
        }
    }

    /// Adds a later edit: its parts replace these, its metadata keys are
    /// merged over these.
    pub fn merge(&mut self, later: &InstanceOverride) {
        if later.weight.is_some() {
            self.weight = later.weight;
        }
        if later.enabled.is_some() {
            self.enabled = later.enabled;
        }
        self.metadata.extend(later.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// Bytes of its metadata patch, keys and values (bounded like an
    /// instance's metadata).
    pub fn metadata_bytes(&self) -> usize {
        self.metadata.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len)).sum()
    }
}

/// The metadata patch that makes `shown` (an instance's metadata as shown
/// now) become exactly `wanted`: every wanted key with its value, every
/// other shown key hidden.
pub fn replacing(
    shown: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let hidden = shown.keys().filter(|k| !wanted.contains_key(*k)).map(|k| (k.clone(), None));
    wanted.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).chain(hidden).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn an_override_replaces_what_it_names_and_leaves_the_rest() {
        let mut instance =
            Instance { metadata: meta(&[("zone", "a"), ("version", "1")]), ..Instance::new("10.0.0.1", 80) };
        let edit = InstanceOverride {
            weight: Some(5.0),
            enabled: None,
            metadata: BTreeMap::from([("zone".to_owned(), None), ("owner".to_owned(), Some("ops".to_owned()))]),
        };
        edit.lay_over(&mut instance);
        assert_eq!((instance.weight, instance.enabled), (5.0, true));
        assert_eq!(instance.metadata, meta(&[("owner", "ops"), ("version", "1")]));
        assert!(!edit.is_empty() && InstanceOverride::default().is_empty());
        assert_eq!(edit.metadata_bytes(), "zone".len() + "owner".len() + "ops".len());
    }

    #[test]
    fn a_later_edit_is_merged_over_an_earlier_one() {
        let mut first = InstanceOverride {
            weight: Some(5.0),
            enabled: Some(false),
            metadata: BTreeMap::from([("a".to_owned(), Some("1".to_owned())), ("b".to_owned(), None)]),
        };
        let later = InstanceOverride {
            weight: None,
            enabled: Some(true),
            metadata: BTreeMap::from([("b".to_owned(), Some("2".to_owned()))]),
        };
        first.merge(&later);
        assert_eq!((first.weight, first.enabled), (Some(5.0), Some(true)));
        assert_eq!(
            first.metadata,
            BTreeMap::from([("a".to_owned(), Some("1".to_owned())), ("b".to_owned(), Some("2".to_owned()))])
        );
    }

    #[test]
    fn replacing_makes_the_shown_metadata_exactly_the_wanted_one() {
        let shown = meta(&[("zone", "a"), ("version", "1")]);
        let wanted = meta(&[("version", "2"), ("owner", "ops")]);
        let patch = replacing(&shown, &wanted);
        let mut instance = Instance { metadata: shown, ..Instance::new("10.0.0.1", 80) };
        InstanceOverride { metadata: patch, ..InstanceOverride::default() }.lay_over(&mut instance);
        assert_eq!(instance.metadata, wanted);
        let mut cleared = Instance { metadata: meta(&[("zone", "a")]), ..Instance::new("10.0.0.1", 80) };
        let patch = replacing(&cleared.metadata.clone(), &BTreeMap::new());
        InstanceOverride { metadata: patch, ..InstanceOverride::default() }.lay_over(&mut cleared);
        assert!(cleared.metadata.is_empty(), "an empty metadata clears it");
    }
}
