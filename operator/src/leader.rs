//! Lease-based leader election, so two operator replicas are safe: only the
//! holder of a `coordination.k8s.io/v1` Lease reconciles.
//!
//! The protocol is client-go's: the holder renews `renewTime` every few
//! seconds; a candidate takes the Lease over only after it has seen the
//! *same* record, unchanged, for a whole `leaseDurationSeconds` on its own
//! clock (so clock skew between nodes does not matter); every write is a
//! compare-and-swap on `resourceVersion`, so two candidates cannot both win.
//! A holder that cannot renew for `renew_deadline` stops reconciling before
//! anybody else may take over (`renew_deadline < lease duration`).
//!
//! The decision is the pure function [`decide`]; [`LeaderElector`] does the
//! API calls.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

use crate::{Error, Result};

/// Timing of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a record must stay unchanged before others may take over.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// Pause between attempts.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    fn default() -> Self {
        LeaseTiming {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do with the Lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction {
    /// No Lease exists: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it over.
    Acquire,
    /// Someone else holds it and renews it.
    Wait {
        /// The holder.
        holder: String,
    },
}

/// Decides, from the Lease read now and how long its record has been seen
/// unchanged on our clock.
pub fn decide(lease: Option<&Lease>, identity: &str, unchanged_for: Duration) -> LeaseAction {
    let Some(lease) = lease else { return LeaseAction::Create };
    let spec = lease.spec.as_ref();
    let holder = spec.and_then(|s| s.holder_identity.as_deref()).unwrap_or("");
    if holder == identity {
        return LeaseAction::Renew;
    }
    if holder.is_empty() {
        return LeaseAction::Acquire;
    }
    let duration = spec.and_then(|s| s.lease_duration_seconds).filter(|d| *d > 0).unwrap_or(15);
    if unchanged_for >= Duration::from_secs(u64::try_from(duration).unwrap_or(15)) {
        LeaseAction::Acquire
    } else {
        LeaseAction::Wait { holder: holder.to_owned() }
    }
}

/// A record of the Lease as last seen, to measure how long it stayed the
/// same.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    resource_version: Option<String>,
}

impl Seen {
    fn of(lease: &Lease) -> Seen {
        Seen {
            holder: lease.spec.as_ref().and_then(|s| s.holder_identity.clone()),
            renew_time: lease.spec.as_ref().and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }
}

/// Takes part in the election for one Lease.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    seen: Option<(Seen, Instant)>,
}

impl LeaderElector {
    /// A candidate called `identity` (the pod name) for Lease `name` in the
    /// namespace of `api`.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: LeaseTiming) -> Self {
        LeaderElector { api, name: name.to_owned(), identity: identity.to_owned(), timing, seen: None }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn record(&self, previous: Option<&LeaseSpec>, taking_over: bool) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15)),
            acquire_time: if taking_over { Some(now.clone()) } else { previous.and_then(|p| p.acquire_time.clone()) },
            renew_time: Some(now),
            lease_transitions: Some(if taking_over && previous.is_some() { transitions + 1 } else { transitions }),
            ..LeaseSpec::default()
        }
    }

    /// One round: read the Lease and create, renew or take it over when
    /// allowed. Returns whether we hold it afterwards. Losing a
    /// compare-and-swap race is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let current = self.api.get_opt(&self.name).await?;
        let unchanged_for = match &current {
            None => Duration::ZERO,
            Some(lease) => {
                let seen = Seen::of(lease);
                match &self.seen {
                    Some((s, since)) if *s == seen => since.elapsed(),
                    _ => {
                        self.seen = Some((seen, Instant::now()));
                        Duration::ZERO
                    }
                }
            }
        };
        let action = decide(current.as_ref(), &self.identity, unchanged_for);
        let result = match (action, current) {
            (LeaseAction::Wait { .. }, _) => return Ok(false),
            (LeaseAction::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(self.record(None, true)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (action, Some(mut lease)) => {
                let taking_over = action == LeaseAction::Acquire;
                lease.spec = Some(self.record(lease.spec.as_ref(), taking_over));
                // `replace` sends metadata.resourceVersion: a compare-and-swap.
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(lease) => {
                self.seen = Some((Seen::of(&lease), Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_already_exists() => Ok(false),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(lease = %self.name, error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Keeps renewing; returns [`Error::LeadershipLost`] once another
    /// candidate holds the Lease or renewing failed for `renew_deadline`.
    /// Call only after [`LeaderElector::acquire`].
    pub async fn hold(&mut self) -> Error {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => return Error::LeadershipLost(format!("{} is held by another replica", self.name)),
                Err(e) => warn!(lease = %self.name, error = %e, "renewing the leader lease failed"),
            }
            if last_renewal.elapsed() >= self.timing.renew_deadline {
                return Error::LeadershipLost(format!(
                    "{} not renewed for {:?}",
                    self.name, self.timing.renew_deadline
                ));
            }
        }
    }

    /// Gives the Lease up (on shutdown) so another replica takes over at
    /// once instead of after the lease duration.
    pub async fn release(&mut self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(self.identity.as_str()) {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, duration: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta { name: Some("roster-operator".into()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: duration,
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(decide(None, "a", Duration::ZERO), LeaseAction::Create);
    }

    #[test]
    fn own_lease_is_renewed() {
        assert_eq!(decide(Some(&lease(Some("a"), Some(15))), "a", Duration::from_secs(100)), LeaseAction::Renew);
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        assert_eq!(decide(Some(&lease(None, Some(15))), "a", Duration::ZERO), LeaseAction::Acquire);
        assert_eq!(decide(Some(&lease(Some(""), Some(15))), "a", Duration::ZERO), LeaseAction::Acquire);
    }

    #[test]
    fn a_renewing_holder_is_respected_until_it_stops() {
        let l = lease(Some("b"), Some(15));
        assert_eq!(decide(Some(&l), "a", Duration::from_secs(14)), LeaseAction::Wait { holder: "b".into() });
        assert_eq!(decide(Some(&l), "a", Duration::from_secs(15)), LeaseAction::Acquire);
    }

    #[test]
    fn missing_duration_means_the_default() {
        let l = lease(Some("b"), None);
        assert!(matches!(decide(Some(&l), "a", Duration::from_secs(10)), LeaseAction::Wait { .. }));
        assert_eq!(decide(Some(&l), "a", Duration::from_secs(15)), LeaseAction::Acquire);
    }

    #[test]
    fn default_timing_renews_before_others_may_take_over() {
        let t = LeaseTiming::default();
        assert!(t.renew_deadline < t.lease_duration);
        assert!(t.retry_period < t.renew_deadline);
    }
}

#[cfg(test)]
mod api_tests {
    //! The elector against a mocked API server: create, renew, and losing a
    //! compare-and-swap race.

    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use kube::Client;
    use serde_json::json;

    fn elector() -> (LeaderElector, tower_test::mock::Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = Api::<Lease>::namespaced(Client::new(service, "default"), "roster-system");
        (LeaderElector::new(api, "roster-operator", "pod-a", LeaseTiming::default()), handle)
    }

    fn respond(send: tower_test::mock::SendResponse<Response<Body>>, status: StatusCode, body: serde_json::Value) {
        let bytes = serde_json::to_vec(&body).expect("json");
        send.send_response(Response::builder().status(status).body(Body::from(bytes)).expect("response"));
    }

    async fn body_of(req: Request<Body>) -> serde_json::Value {
        let bytes = req.into_body().collect_bytes().await.expect("body");
        serde_json::from_slice(&bytes).expect("json body")
    }

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/roster-system/leases/roster-operator";

    #[tokio::test]
    async fn creates_then_renews_then_loses_a_race() {
        let (mut elector, mut api) = elector();
        let server = tokio::spawn(async move {
            // Round 1: no Lease -> create it.
            let (req, send) = api.next_request().await.expect("get");
            assert_eq!((req.method(), req.uri().path()), (&Method::GET, PATH));
            respond(send, StatusCode::NOT_FOUND, json!({"kind": "Status", "code": 404, "reason": "NotFound"}));
            let (req, send) = api.next_request().await.expect("create");
            assert_eq!(req.method(), Method::POST);
            let created = body_of(req).await;
            assert_eq!(created["spec"]["holderIdentity"], "pod-a");
            assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
            let mut stored = created.clone();
            stored["metadata"]["resourceVersion"] = json!("1");
            respond(send, StatusCode::CREATED, stored.clone());
            // Round 2: our Lease -> renew with a compare-and-swap on resourceVersion 1.
            let (_, send) = api.next_request().await.expect("get");
            respond(send, StatusCode::OK, stored.clone());
            let (req, send) = api.next_request().await.expect("replace");
            assert_eq!((req.method(), req.uri().path()), (&Method::PUT, PATH));
            let renewed = body_of(req).await;
            assert_eq!(renewed["metadata"]["resourceVersion"], "1");
            assert_eq!(renewed["spec"]["holderIdentity"], "pod-a");
            assert_eq!(renewed["spec"]["leaseTransitions"], 0);
            // Someone else wrote in between: 409.
            respond(send, StatusCode::CONFLICT, json!({"kind": "Status", "code": 409, "reason": "Conflict"}));
        });
        assert!(elector.try_acquire_or_renew().await.expect("round 1"));
        assert!(!elector.try_acquire_or_renew().await.expect("round 2 lost the race"));
        server.await.expect("scenario");
    }

    #[tokio::test]
    async fn waits_for_a_live_holder() {
        let (mut elector, mut api) = elector();
        let server = tokio::spawn(async move {
            let (_, send) = api.next_request().await.expect("get");
            respond(
                send,
                StatusCode::OK,
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "roster-operator", "resourceVersion": "7"},
                       "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15}}),
            );
            // No write may follow.
            let next = tokio::time::timeout(Duration::from_millis(100), api.next_request()).await;
            assert!(next.is_err(), "a candidate must not write a Lease someone else holds");
        });
        assert!(!elector.try_acquire_or_renew().await.expect("round"));
        server.await.expect("scenario");
    }
}
