//! What the clients were told, recorded as it happens: each gRPC client's
//! acknowledged and unknown registrations (with the SDK's own resends that
//! may undo a deregistration), each HTTP instance's state, each persistent
//! write's outcome. The checker turns it into what the cluster must hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client's last pushed view of each service it subscribed to, as
/// `ip:port:healthy` sorted.
pub(super) type Views = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// A gRPC client's commands and outcomes, and what its SDK did on its own
/// (reconnects, redone registrations), each with the run time in seconds.
pub(super) type History = Arc<Mutex<Vec<String>>>;

/// How many times a client's SDK resent its register of each service on
/// its own (`event redo`), counted before any later line of the client is
/// read.
pub(super) type Redone = Arc<Mutex<BTreeMap<String, u64>>>;

/// Adds `entry` at run time `at` to a client's history.
pub(super) fn note(history: &History, at: Duration, entry: String) {
    if let Ok(mut h) = history.lock() {
        h.push(format!("{:>7.1}s {entry}", at.as_secs_f64()));
    }
}

/// The outcome of one write as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Acked,
    Unknown,
}

/// What one gRPC client holds in one service as far as it knows:
/// `required` is certainly registered; `allowed` may be (operations whose
/// outcome is unknown).
#[derive(Debug, Clone, Default)]
pub(super) struct Held {
    pub(super) required: Option<String>,
    pub(super) allowed: BTreeSet<String>,
    /// The SDK's own resends of this service's register
    /// ([`Driven::redos`]) when the last register was acknowledged.
    pub(super) redos_at_register: u64,
}

/// One gRPC client process (one generation of a slot).
#[derive(Debug)]
pub(super) struct SdkModel {
    pub(super) name: String,
    pub(super) alive: bool,
    pub(super) held: BTreeMap<String, Held>,
    /// Every instance it ever tried, per service.
    pub(super) tried: BTreeMap<String, BTreeSet<String>>,
    pub(super) subscriptions: Vec<String>,
    pub(super) views: Views,
    pub(super) history: History,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpState {
    Beating,
    Stopped,
    Deregistered,
}

#[derive(Debug, Clone)]
pub(super) struct HttpModel {
    pub(super) service: String,
    pub(super) ip: String,
    pub(super) port: u16,
    pub(super) state: HttpState,
}

#[derive(Debug, Clone)]
pub(super) struct PersistentModel {
    pub(super) value: String,
    pub(super) register: Outcome,
    pub(super) deregister: Option<Outcome>,
}

#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) sdk: Vec<SdkModel>,
    pub(super) http: Vec<HttpModel>,
    pub(super) persistent: BTreeMap<u16, PersistentModel>,
    pub(super) sdk_acked: usize,
    pub(super) sdk_failed: usize,
    pub(super) crashed: usize,
    /// Deregistrations the SDK's redo may have undone and that still
    /// stand: (client index, service, `ip:port`).
    pub(super) redo_overlaps: Vec<(usize, String, String)>,
    /// All such deregistrations.
    pub(super) redo_overlaps_seen: usize,
}

impl Model {
    /// Adds to the history of client `index`.
    pub(super) fn note_sdk(&self, index: usize, at: Duration, entry: String) {
        if let Some(client) = self.sdk.get(index) {
            note(&client.history, at, entry);
        }
    }

    /// Records a register or deregister by client `index`, answered at
    /// run time `now`.
    pub(super) fn record_sdk(&mut self, index: usize, op: SdkOp<'_>, now: Duration) {
        let SdkOp { service, instance, register, outcome, began, redos } = op;
        let what = if register { "register" } else { "deregister" };
        let took = now.saturating_sub(began);
        self.note_sdk(index, began, format!("{what} {service} {instance}: {outcome:?} after {took:.1?}"));
        match outcome {
            Outcome::Acked => self.sdk_acked += 1,
            Outcome::Unknown => self.sdk_failed += 1,
        }
        let client = &mut self.sdk[index];
        client.tried.entry(service.to_owned()).or_default().insert(instance.to_owned());
        let held = client.held.entry(service.to_owned()).or_default();
        match (register, outcome) {
            // One instance per service and connection: a register replaces.
            (true, Outcome::Acked) => {
                *held = Held {
                    required: Some(instance.to_owned()),
                    allowed: [instance.to_owned()].into(),
                    redos_at_register: redos,
                };
                // It replaced whatever the SDK may have put back.
                self.redo_overlaps.retain(|(i, s, _)| *i != index || s != service);
            }
            (false, Outcome::Acked) if redos > held.redos_at_register => {
                // nacos-sdk 0.8.3 sends a deregister before it drops its redo
                // task, and its redo pass may resend the register meanwhile
                // (it does so after a reconnect, or after a register that
                // failed): the SDK itself may have put the instance back.
                held.required = None;
                held.allowed.insert(instance.to_owned());
                self.redo_overlaps_seen += 1;
                self.redo_overlaps.push((index, service.to_owned(), instance.to_owned()));
                let why = "may stay: the SDK resent its register of this service on its own since the last one";
                self.note_sdk(index, began, format!("  {why}"));
            }
            (false, Outcome::Acked) => {
                // Gone; another one whose register had an unknown outcome may stay.
                held.required = None;
                held.allowed.remove(instance);
            }
            (_, Outcome::Unknown) => {
                // The SDK may still (re)do it; the previous one may stay too.
                held.required = None;
                held.allowed.insert(instance.to_owned());
            }
        }
    }
}

/// A register or deregister as a gRPC client saw it.
pub(super) struct SdkOp<'a> {
    pub(super) service: &'a str,
    /// `ip:port`.
    pub(super) instance: &'a str,
    pub(super) register: bool,
    pub(super) outcome: Outcome,
    /// When it was sent (run time).
    pub(super) began: Duration,
    /// The SDK's own resends of this service's register so far, counted
    /// when the answer came.
    pub(super) redos: u64,
}
