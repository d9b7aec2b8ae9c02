//! The reconcile of one RegistryCluster: the steps of the [module
//! docs](super), each a method of [`Round`], called in order by
//! [`Reconcile::reconcile`].

use std::future::Future;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::Resource;
use roster_crds::{find_condition, RegistryCluster, RegistryClusterStatus, CONDITION_PROGRESSING, STATUS_TRUE};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info};

use super::observe::{self, World};
use super::{Context, REQUEUE_ACTIVE, REQUEUE_STABLE};
use crate::desired::{self, Target};
use crate::events::{self, normal};
use crate::names::{self, FIELD_MANAGER};
use crate::scaling::{self, ScaleInput, ScaleStep};
use crate::server_lists;
use crate::status::{self, Failure, StatefulSetView, StatusInput};
use crate::upgrade::{self, UpgradeInput, UpgradeStep, UpgradeWait};
use crate::{Error, Result};

/// What the controller does with one RegistryCluster.
pub trait Reconcile {
    /// Moves the cluster one step toward its spec and reports its status.
    fn reconcile(&self, ctx: &Context) -> impl Future<Output = Result<Action>> + Send;

    /// The cluster is being deleted (a deletion timestamp, e.g. foreground
    /// deletion): the owned objects go by garbage collection and the PVCs
    /// stay, so the operator only stops managing it and says so.
    fn cleanup(&self, ctx: &Context) -> impl Future<Output = Result<Action>> + Send;
}

impl Reconcile for RegistryCluster {
    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        let round = Round { ctx, t: Target::new(self)? };
        let desired = self.spec.replicas.max(1);
        // 1. The server list first: on scale-down the departing members
        //    leave it before the StatefulSet is touched.
        server_lists::publish(&ctx.server_lists, &round.t);
        // 2. The objects that do not depend on observations.
        round.apply_fixed_objects(desired).await?;
        // 3. Observe.
        let world = observe::observe(ctx, &round.t, desired).await?;
        // 4. Decide the size, apply the StatefulSet, roll.
        let current = world.statefulset.as_ref().and_then(|s| s.spec.replicas);
        let step = scaling::plan(ScaleInput {
            cluster: &round.t.name,
            namespace: &round.t.namespace,
            desired,
            current,
            observations: &world.observations,
        });
        let (mut view, refused) = round.apply_statefulset(&step, &world).await?;
        let restarted = round.roll(&step, &mut view, &world).await?;
        let now = Time(Timestamp::now());
        if view.failure.is_none() {
            let pods_missing = observe::failed_create(ctx, &round.t, view.replicas, &world.pods, &now).await?;
            view.failure = pods_missing.map(Failure::PodCreation);
        }
        // 5. Status.
        let new_status = status::aggregate(StatusInput {
            cluster: &round.t.name,
            namespace: &round.t.namespace,
            generation: self.metadata.generation,
            desired,
            step: &step,
            statefulset: &view,
            pods: &world.pods,
            observations: &world.observations,
            previous: self.status.as_ref(),
            now,
        });
        if !round.write_status(&new_status).await? {
            debug!("the cluster was deleted while it was reconciled");
            return Ok(Action::await_change());
        }
        // 6. Events.
        for event in events::planned_events(self.status.as_ref(), &new_status, &step, restarted.as_deref()) {
            ctx.recorder.publish(&event, &self.object_ref(&())).await?;
        }
        if let Some(refused) = refused {
            // Counted and retried with back-off; the status says why.
            return Err(refused);
        }
        Ok(Action::requeue(if settled(&step, &new_status) { REQUEUE_STABLE } else { REQUEUE_ACTIVE }))
    }

    async fn cleanup(&self, ctx: &Context) -> Result<Action> {
        let note = "The RegistryCluster is being deleted: its owned objects are garbage-collected, its PVCs are kept";
        ctx.recorder.publish(&normal("Deleting", "Cleanup", note.to_owned()), &self.object_ref(&())).await?;
        Ok(Action::await_change())
    }
}

/// Whether nothing moves: no scaling, Progressing not True, Available True.
fn settled(step: &ScaleStep, status: &RegistryClusterStatus) -> bool {
    let is = |t: &str| find_condition(&status.conditions, t).map(|c| c.status == STATUS_TRUE);
    !step.in_progress()
        && is(CONDITION_PROGRESSING) == Some(false)
        && is(roster_crds::CONDITION_AVAILABLE) == Some(true)
}

async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K>
where
    K: Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(name, &params, &Patch::Apply(object)).await?)
}

/// One reconcile of one cluster.
struct Round<'a> {
    ctx: &'a Context,
    t: Target<'a>,
}

impl Round<'_> {
    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(&self) -> Api<K>
    where
        K::DynamicType: Default,
    {
        Api::namespaced(self.ctx.client.clone(), &self.t.namespace)
    }

    /// The ConfigMap, the Services, the PodDisruptionBudget and the cluster
    /// Secret: objects that do not depend on what the members say.
    async fn apply_fixed_objects(&self, desired: i32) -> Result<()> {
        let (t, name) = (&self.t, self.t.name.as_str());
        apply(&self.api::<ConfigMap>(), &names::configmap(name), &desired::configmap::configmap(t)).await?;
        let services = self.api::<Service>();
        apply(&services, &names::headless_service(name), &desired::services::headless_service(t)).await?;
        apply(&services, &names::client_service(name), &desired::services::client_service(t)).await?;
        let pdb = desired::pdb::pod_disruption_budget(t, desired);
        apply(&self.api::<PodDisruptionBudget>(), &names::pdb(name), &pdb).await?;
        self.ensure_cluster_secret().await
    }

    /// Creates the cluster Secret when it does not exist; an existing one is
    /// never touched ([`desired::secret`]).
    async fn ensure_cluster_secret(&self) -> Result<()> {
        let api = self.api::<Secret>();
        let name = names::cluster_secret(&self.t.name);
        if api.get_opt(&name).await?.is_some() {
            return Ok(());
        }
        match api.create(&PostParams::default(), &desired::secret::cluster_secret(&self.t)?).await {
            Ok(_) => {
                info!(secret = %name, "created the cluster secret");
                Ok(())
            }
            // Created meanwhile (another operator replica): use that one.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies the StatefulSet with the size `step` picked. A StatefulSet
    /// the API server refuses as invalid (422) is no reason to stop
    /// reporting: the view says why, and the error is returned for the
    /// back-off once the status is written.
    async fn apply_statefulset(&self, step: &ScaleStep, world: &World) -> Result<(StatefulSetView, Option<Error>)> {
        let replicas = step.statefulset_replicas();
        let sts = desired::statefulset::statefulset(&self.t, &self.ctx.settings, replicas);
        match apply(&self.api::<StatefulSet>(), &names::statefulset(&self.t.name), &sts).await {
            Ok(applied) => {
                if !matches!(step, ScaleStep::Steady { .. }) {
                    info!(step = ?step, "scaling");
                }
                Ok((observe::statefulset_view(&applied, replicas), None))
            }
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 422 => {
                let found = world.statefulset.as_ref();
                let mut view = found.map_or_else(StatefulSetView::default, |s| {
                    observe::statefulset_view(s, s.spec.replicas.unwrap_or(0))
                });
                view.failure = Some(Failure::Refused(e.message.clone()));
                Ok((view, Some(Error::Kube(kube::Error::Api(e)))))
            }
            Err(e) => Err(e),
        }
    }

    /// One step of a rolling update, when no scaling is under way and pods
    /// lag behind the template: let the planner pick and evict the pod it
    /// picks. Records in `view` what the roll does or waits for; returns the
    /// description of a restart. An eviction the PodDisruptionBudget
    /// refuses (429) is a wait, not an error.
    async fn roll(&self, step: &ScaleStep, view: &mut StatefulSetView, world: &World) -> Result<Option<String>> {
        let Some(revision) = view.update_revision.clone() else { return Ok(None) };
        let outdated = world.pods.iter().any(|p| p.ordinal < view.replicas && p.revision.as_ref() != Some(&revision));
        if !matches!(step, ScaleStep::Steady { .. }) || !view.template_observed || !outdated || view.failure.is_some() {
            return Ok(None);
        }
        let name = self.t.name.as_str();
        let plan = upgrade::plan(UpgradeInput {
            cluster: name,
            namespace: &self.t.namespace,
            replicas: view.replicas,
            update_revision: &revision,
            pods: &world.pods,
            observations: &world.observations,
        });
        let mut restarted = None;
        let plan = match plan {
            UpgradeStep::Restart { ordinal, .. } => {
                let pod = names::pod(name, ordinal);
                match self.api::<Pod>().evict(&pod, &EvictParams::default()).await {
                    Ok(_) => {
                        info!(%pod, "rolling update: evicted");
                        // The revision tells two rolls' restarts of one pod
                        // apart, so each shows as its own Event.
                        restarted = Some(format!("{} to revision {revision}", plan.describe(name)));
                        plan
                    }
                    Err(kube::Error::Api(e)) if e.code == 429 => {
                        UpgradeStep::Wait(UpgradeWait::EvictionRefused(ordinal))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            other => other,
        };
        view.rollout = Some(plan.describe(name));
        Ok(restarted)
    }

    /// Applies the status to the status subresource (server-side apply).
    /// Returns `false` when the RegistryCluster is gone (deleted while it
    /// was reconciled): nothing is wrong, there is nothing left to report.
    async fn write_status(&self, status: &RegistryClusterStatus) -> Result<bool> {
        let patch = serde_json::json!({
            "apiVersion": RegistryCluster::api_version(&()),
            "kind": RegistryCluster::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match self.api::<RegistryCluster>().patch_status(&self.t.name, &params, &Patch::Apply(&patch)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
