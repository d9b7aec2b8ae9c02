//! The PodDisruptionBudget: voluntary disruptions (node drains, cluster
//! upgrades) may take at most a minority of the members at once, so the
//! Raft quorum survives them.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Target;
use crate::names;

/// Members that may be disrupted at once: the largest minority,
/// `(n - 1) / 2` (1 of 3, 2 of 5). A single member has no quorum to protect,
/// and a budget of 0 would only block every node drain, so it allows 1;
/// two members really cannot lose one without losing quorum, so they get 0.
pub fn max_unavailable(replicas: i32) -> i32 {
    if replicas <= 1 {
        1
    } else {
        (replicas - 1) / 2
    }
}

/// The PodDisruptionBudget for `replicas` members.
pub fn pod_disruption_budget(t: &Target<'_>, replicas: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: t.meta(names::pdb(&t.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable(replicas))),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(&t.name)),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_support::cluster;

    #[test]
    fn at_most_a_minority_is_unavailable() {
        for (n, expected) in [(1, 1), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3)] {
            assert_eq!(max_unavailable(n), expected, "replicas {n}");
            if n >= 2 {
                // whatever is left is still a majority
                assert!(n - max_unavailable(n) > n / 2, "replicas {n}");
            }
        }
    }

    #[test]
    fn budget_selects_the_members() {
        let rc = cluster(5);
        let t = Target::new(&rc).expect("target");
        let pdb = pod_disruption_budget(&t, 5);
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(2)));
        assert_eq!(spec.min_available, None);
        assert_eq!(spec.selector.and_then(|s| s.match_labels), Some(names::selector_labels("demo")));
    }
}
