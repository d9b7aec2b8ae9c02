//! The consumer view of a service: what queries answer and pushes carry.
//!
//! Disabled instances are never shown. When the healthy share of the
//! selected instances is at or below the service's protect threshold,
//! every instance is shown as healthy: Nacos's protection against sending
//! all traffic to the few instances left healthy.
//!
//! A view is encoded once per state of its service: [`NamingStore::answer`]
//! keeps the JSON of each selection asked for in the service's entry, and
//! every change its consumers can see empties that cache (the store
//! announces each such change, see `NamingStore::notify`). Queries and
//! pushes then copy bytes instead of walking the publishers and encoding
//! every host again; only `lastRefTime`, the time of the answer, is written
//! per answer.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

use super::NamingStore;
use crate::naming::clock::now_millis;
use crate::naming::model::{Instance, InstanceKey, ServiceInfo, ServiceKey, CACHE_MILLIS};

/// How an instance is selected for a query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Clusters to include; empty means all.
    pub clusters: Vec<String>,
    /// Return only healthy instances (unless the protect threshold is reached).
    pub healthy_only: bool,
    /// Name the service `group@@name` (HTTP v1) instead of bare (gRPC).
    pub grouped_name: bool,
}

/// Whether the protect threshold applies to `selected`: some are selected,
/// the service has a threshold, and the healthy share is at or below it.
fn protection_reached(selected: &[&Instance], protect_threshold: f32) -> bool {
    let healthy = selected.iter().filter(|i| i.healthy).count();
    !selected.is_empty() && protect_threshold > 0.0 && (healthy as f32 / selected.len() as f32) <= protect_threshold
}

/// The JSON layout of an encoded view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Fields in the order of [`ServiceInfo`] (HTTP v1 list, pushes), as
    /// serialising the struct writes them.
    Fields,
    /// Keys sorted at every level (gRPC query and subscribe answers), as a
    /// `serde_json::Value` writes them.
    Sorted,
}

/// A view as JSON bytes, without its `lastRefTime` value:
/// `prefix`, the time of the answer, `suffix`.
#[derive(Debug)]
pub struct EncodedView {
    /// The JSON with the value of `lastRefTime` cut out at `ref_time_at`.
    bytes: Box<[u8]>,
    ref_time_at: usize,
    /// Hosts shown.
    pub hosts: usize,
}

/// Stands for `lastRefTime` while a view is encoded; a bare number no other
/// field of a view holds (names and metadata are strings).
const REF_TIME_MARK: i64 = i64::MIN;

impl EncodedView {
    /// Encodes `info` in `form`.
    pub fn new(info: &ServiceInfo, form: Form) -> EncodedView {
        let marked = ServiceInfo { last_ref_time: REF_TIME_MARK, ..info.clone() };
        let mut bytes = match form {
            Form::Fields => serde_json::to_vec(&marked),
            Form::Sorted => serde_json::to_value(&marked).and_then(|v| serde_json::to_vec(&v)),
        }
        // Strings, numbers, booleans and maps with string keys: serialising
        // cannot fail.
        .unwrap_or_default();
        let number = REF_TIME_MARK.to_string();
        let field = format!("\"lastRefTime\":{number}");
        let found = bytes.windows(field.len()).position(|w| w == field.as_bytes());
        let ref_time_at = match found {
            Some(at) => {
                let value_at = at + field.len() - number.len();
                bytes.drain(value_at..value_at + number.len());
                value_at
            }
            // Not reached: every view has the field. Without it the view is
            // served as it is.
            None => bytes.len(),
        };
        EncodedView { bytes: bytes.into(), ref_time_at, hosts: info.hosts.len() }
    }

    /// Appends the view, answered at `now` (ms since the epoch), to `out`.
    pub fn write(&self, now: i64, out: &mut Vec<u8>) {
        let (prefix, suffix) = self.bytes.split_at(self.ref_time_at);
        out.reserve(self.len());
        out.extend_from_slice(prefix);
        if !suffix.is_empty() {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{now}");
        }
        out.extend_from_slice(suffix);
    }

    /// The view answered at `now` (ms since the epoch).
    pub fn to_bytes(&self, now: i64) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(now, &mut out);
        out
    }

    /// Bytes of the view, give or take the digits of its time.
    pub fn len(&self) -> usize {
        self.bytes.len() + 20
    }

    /// Never true: a view is an object.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Encoded views a service entry keeps per selection this many; a client
/// asking with ever new cluster filters only displaces older ones.
const ANSWERS_KEPT: usize = 8;

/// The encoded views of a service's current state (held in its entry).
#[derive(Debug, Default)]
pub(super) struct AnswerCache {
    answers: Mutex<Vec<(Selection, Form, Arc<EncodedView>)>>,
}

impl AnswerCache {
    fn get(&self, selection: &Selection, form: Form) -> Option<Arc<EncodedView>> {
        let answers = self.answers.lock();
        answers.iter().find(|(s, f, _)| *f == form && s == selection).map(|(_, _, a)| a.clone())
    }

    fn put(&self, selection: &Selection, form: Form, answer: Arc<EncodedView>) {
        let mut answers = self.answers.lock();
        if answers.len() >= ANSWERS_KEPT {
            answers.remove(0);
        }
        answers.push((selection.clone(), form, answer));
    }

    /// Forgets every view: the service changed.
    pub(super) fn clear(&self) {
        self.answers.lock().clear();
    }
}

impl NamingStore {
    /// The consumer view of a service in `form`, encoded once per state of
    /// the service (see the module documentation).
    pub fn answer(&self, key: &ServiceKey, selection: &Selection, form: Form) -> Arc<EncodedView> {
        let inner = self.inner.read();
        let Some(entry) = inner.services.get(key) else {
            return Arc::new(EncodedView::new(&self.view(&inner, key, selection), form));
        };
        if let Some(answer) = entry.answers.get(selection, form) {
            return answer;
        }
        // Encoded under the shared lock, so that no write can land between
        // reading the state and caching its view: a write empties the
        // cache after it changed the state, never before.
        let answer = Arc::new(EncodedView::new(&self.view(&inner, key, selection), form));
        entry.answers.put(selection, form, answer.clone());
        answer
    }

    /// Builds the consumer view of a service.
    ///
    /// Disabled instances are never returned. When the healthy share of the
    /// selected instances is at or below the protect threshold, every instance
    /// is returned as healthy (Nacos's protection against starving consumers).
    pub fn query(&self, key: &ServiceKey, selection: &Selection) -> ServiceInfo {
        let inner = self.inner.read();
        self.view(&inner, key, selection)
    }

    fn view(&self, inner: &super::Inner, key: &ServiceKey, selection: &Selection) -> ServiceInfo {
        let (protect_threshold, instances) = match inner.services.get(key) {
            Some(entry) => (entry.meta.protect_threshold, inner.instances(key, entry)),
            None => (0.0, Vec::new()),
        };
        let selected: Vec<&Instance> = instances
            .iter()
            .map(|i| &**i)
            .filter(|i| i.enabled)
            .filter(|i| selection.clusters.is_empty() || selection.clusters.iter().any(|c| c == &i.cluster))
            .collect();
        let protect = protection_reached(&selected, protect_threshold);
        // The checksum covers what a consumer sees of each host, hashed
        // directly rather than through its JSON.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let hosts: Vec<_> = selected
            .into_iter()
            .filter(|i| protect || !selection.healthy_only || i.healthy)
            .map(|i| {
                let mut wire = i.to_wire(key, &self.timeouts);
                if protect {
                    wire.healthy = true;
                }
                (&i.ip, i.port, &i.cluster, i.weight.to_bits(), wire.healthy, &i.metadata).hash(&mut hasher);
                wire
            })
            .collect();
        ServiceInfo {
            name: if selection.grouped_name { key.grouped_name() } else { key.name.clone() },
            group_name: key.group.clone(),
            clusters: selection.clusters.join(","),
            cache_millis: CACHE_MILLIS,
            hosts,
            last_ref_time: now_millis(),
            checksum: format!("{:016x}", hasher.finish()),
            all_ips: false,
            reach_protection_threshold: protect,
            valid: true,
        }
    }

    /// One instance of a service as consumers see it (with its override),
    /// if it exists.
    pub fn instance(&self, key: &ServiceKey, instance: &InstanceKey) -> Option<Instance> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        inner.instances(key, entry).into_iter().find(|i| &i.key() == instance).map(std::borrow::Cow::into_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::*;
    use crate::naming::model::{BeatTimeouts, ServiceMeta};
    use crate::naming::ClientKind;

    #[test]
    fn protect_threshold_returns_all_as_healthy() {
        let store = NamingStore::new(BeatTimeouts::default());
        let meta = ServiceMeta { protect_threshold: 0.6, ..ServiceMeta::default() };
        store.create_service(&svc("a"), meta).expect("create");
        store.register_persistent(&svc("a"), Instance { healthy: false, ephemeral: false, ..inst("10.0.0.1", 80) });
        store.register_persistent(&svc("a"), Instance { ephemeral: false, ..inst("10.0.0.2", 80) });
        let info = store.query(&svc("a"), &Selection { healthy_only: true, ..Selection::default() });
        assert!(info.reach_protection_threshold);
        assert_eq!(info.hosts.len(), 2);
        assert!(info.hosts.iter().all(|h| h.healthy));
    }

    #[test]
    fn the_protect_threshold_is_reached_at_or_below_the_healthy_share() {
        let (up, down) = (inst("10.0.0.1", 80), Instance { healthy: false, ..inst("10.0.0.2", 80) });
        assert!(protection_reached(&[&up, &down], 0.5), "half healthy, threshold one half");
        assert!(!protection_reached(&[&up, &down], 0.49));
        assert!(!protection_reached(&[&down, &down], 0.0), "no threshold set");
        assert!(!protection_reached(&[], 0.9), "nothing selected");
    }

    #[test]
    fn disabled_and_other_clusters_are_filtered() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_persistent(&svc("a"), Instance { enabled: false, ..inst("10.0.0.1", 80) });
        store.register_persistent(&svc("a"), Instance { cluster: "east".into(), ..inst("10.0.0.2", 80) });
        store.register_persistent(&svc("a"), inst("10.0.0.3", 80));
        let all = store.query(&svc("a"), &Selection::default());
        assert_eq!(all.hosts.len(), 2);
        let east = store.query(&svc("a"), &Selection { clusters: vec!["east".into()], ..Selection::default() });
        assert_eq!(east.hosts.len(), 1);
        assert_eq!(east.clusters, "east");
    }

    /// The JSON of a view as the serialised `ServiceInfo` writes it, with
    /// its `lastRefTime` set to `at`.
    fn serialised(store: &NamingStore, selection: &Selection, form: Form, at: i64) -> String {
        let info = ServiceInfo { last_ref_time: at, ..store.query(&svc("a"), selection) };
        let bytes = match form {
            Form::Fields => serde_json::to_vec(&info),
            Form::Sorted => serde_json::to_value(&info).and_then(|v| serde_json::to_vec(&v)),
        };
        String::from_utf8(bytes.expect("json")).expect("utf-8")
    }

    #[test]
    fn an_encoded_view_is_the_serialised_one_and_is_encoded_once_per_state() {
        let store = NamingStore::new(BeatTimeouts::default());
        let mut tagged = inst("10.0.0.1", 80);
        tagged.metadata.insert("lastRefTime".into(), "-9223372036854775808".into());
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), tagged);
        store.register_persistent(
            &svc("a"),
            Instance { ephemeral: false, cluster: "east".into(), ..inst("10.0.0.2", 81) },
        );
        let east = Selection { clusters: vec!["east".into()], ..Selection::default() };
        for selection in [Selection::default(), east.clone()] {
            for form in [Form::Fields, Form::Sorted] {
                let view = store.answer(&svc("a"), &selection, form);
                let text = String::from_utf8(view.to_bytes(1_700_000_000_123)).expect("utf-8");
                assert_eq!(text, serialised(&store, &selection, form, 1_700_000_000_123), "{selection:?} {form:?}");
                assert!(Arc::ptr_eq(&view, &store.answer(&svc("a"), &selection, form)), "kept while nothing changed");
            }
        }
        let all_before = store.answer(&svc("a"), &Selection::default(), Form::Fields);
        let east_before = store.answer(&svc("a"), &east, Form::Sorted);
        // Each kind of change its consumers see makes the views new.
        let changes: [&dyn Fn(); 4] = [
            &|| store.register_ephemeral("d", ClientKind::Connection, &svc("a"), inst("10.0.0.3", 80)),
            &|| {
                let meta = ServiceMeta { protect_threshold: 0.9, ..ServiceMeta::default() };
                store.update_service(&svc("a"), meta).expect("update");
            },
            &|| {
                store.deregister_ephemeral("d", &svc("a"), &inst("10.0.0.3", 80).key(), false);
            },
            &|| {
                store.remove_client("c");
            },
        ];
        let (mut all_before, mut east_before) = (all_before, east_before);
        for (i, change) in changes.iter().enumerate() {
            change();
            let all = store.answer(&svc("a"), &Selection::default(), Form::Fields);
            let east_now = store.answer(&svc("a"), &east, Form::Sorted);
            assert!(!Arc::ptr_eq(&all, &all_before) && !Arc::ptr_eq(&east_now, &east_before), "change {i}");
            assert_eq!(
                String::from_utf8(all.to_bytes(5)).expect("utf-8"),
                serialised(&store, &Selection::default(), Form::Fields, 5),
                "change {i}"
            );
            assert_eq!(
                String::from_utf8(east_now.to_bytes(5)).expect("utf-8"),
                serialised(&store, &east, Form::Sorted, 5),
                "change {i}"
            );
            (all_before, east_before) = (all, east_now);
        }
        assert_eq!(all_before.hosts, 1, "only the persistent instance is left");
    }
}
