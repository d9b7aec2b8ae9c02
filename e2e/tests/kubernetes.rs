//! The Kubernetes lifecycle on a real control plane: see
//! `roster_e2e::kubernetes` for the story and what each step checks.
//!
//! Needs `../shared/kube` running (`eval "$(../shared/kube/up.sh)"`) and
//! `helm-python-sdk`; `.ci/run` provides both. Without them it fails under
//! `CI=true` and skips, saying so, otherwise. `ROSTER_KUBE_E2E_KEEP_GOING=1`
//! runs every step even after a failure (the test fails all the same).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kubernetes_lifecycle_loses_nothing_and_conditions_tell_the_truth() {
    roster_e2e::kubernetes::run().await;
}
