//! The CRD's short names must not collide with a built-in resource: when
//! they do, `kubectl get <short name>` answers for the built-in one (`rc`
//! is ReplicationController's), and the RegistryCluster is unreachable by it.
//!
//! The lists are what `kubectl api-resources` shows on Kubernetes v1.32
//! (the control plane the e2e suite runs on, which also checks the live
//! list): every built-in short name, and every resource's plural and
//! singular name, since kubectl resolves those too.

/// Short names of the built-in resources of Kubernetes v1.32.
const BUILT_IN_SHORT_NAMES: &[&str] = &[
    "cj", "cm", "crd", "crds", "cs", "csr", "deploy", "ds", "ep", "ev", "hpa", "ing", "limits", "netpol", "no", "ns",
    "pc", "pdb", "po", "pv", "pvc", "quota", "rc", "rs", "sa", "sc", "sts", "svc",
];

/// Plural and singular names of the built-in resources of Kubernetes v1.32.
const BUILT_IN_NAMES: &[&str] = &[
    "apiservice",
    "apiservices",
    "binding",
    "bindings",
    "certificatesigningrequest",
    "certificatesigningrequests",
    "clusterrole",
    "clusterrolebinding",
    "clusterrolebindings",
    "clusterroles",
    "componentstatus",
    "componentstatuses",
    "configmap",
    "configmaps",
    "controllerrevision",
    "controllerrevisions",
    "cronjob",
    "cronjobs",
    "csidriver",
    "csidrivers",
    "csinode",
    "csinodes",
    "csistoragecapacities",
    "csistoragecapacity",
    "customresourcedefinition",
    "customresourcedefinitions",
    "daemonset",
    "daemonsets",
    "deployment",
    "deployments",
    "endpoints",
    "endpointslice",
    "endpointslices",
    "event",
    "events",
    "flowschema",
    "flowschemas",
    "horizontalpodautoscaler",
    "horizontalpodautoscalers",
    "ingress",
    "ingressclass",
    "ingressclasses",
    "ingresses",
    "job",
    "jobs",
    "lease",
    "leases",
    "limitrange",
    "limitranges",
    "localsubjectaccessreview",
    "localsubjectaccessreviews",
    "mutatingwebhookconfiguration",
    "mutatingwebhookconfigurations",
    "namespace",
    "namespaces",
    "networkpolicies",
    "networkpolicy",
    "node",
    "nodes",
    "persistentvolume",
    "persistentvolumeclaim",
    "persistentvolumeclaims",
    "persistentvolumes",
    "pod",
    "poddisruptionbudget",
    "poddisruptionbudgets",
    "pods",
    "podtemplate",
    "podtemplates",
    "priorityclass",
    "priorityclasses",
    "prioritylevelconfiguration",
    "prioritylevelconfigurations",
    "replicaset",
    "replicasets",
    "replicationcontroller",
    "replicationcontrollers",
    "resourcequota",
    "resourcequotas",
    "role",
    "rolebinding",
    "rolebindings",
    "roles",
    "runtimeclass",
    "runtimeclasses",
    "secret",
    "secrets",
    "selfsubjectaccessreview",
    "selfsubjectaccessreviews",
    "selfsubjectreview",
    "selfsubjectreviews",
    "selfsubjectrulesreview",
    "selfsubjectrulesreviews",
    "service",
    "serviceaccount",
    "serviceaccounts",
    "services",
    "statefulset",
    "statefulsets",
    "storageclass",
    "storageclasses",
    "subjectaccessreview",
    "subjectaccessreviews",
    "tokenreview",
    "tokenreviews",
    "validatingadmissionpolicies",
    "validatingadmissionpolicy",
    "validatingadmissionpolicybinding",
    "validatingadmissionpolicybindings",
    "validatingwebhookconfiguration",
    "validatingwebhookconfigurations",
    "volumeattachment",
    "volumeattachments",
];

#[test]
fn short_names_collide_with_no_built_in_resource() {
    let crd = roster_crds::crd();
    let short = crd.spec.names.short_names.clone().unwrap_or_default();
    assert!(!short.is_empty(), "the CRD has a short name");
    for name in &short {
        assert!(!BUILT_IN_SHORT_NAMES.contains(&name.as_str()), "{name:?} is a built-in short name");
        assert!(!BUILT_IN_NAMES.contains(&name.as_str()), "{name:?} is a built-in resource name");
        assert_eq!(name, &name.to_lowercase(), "kubectl matches short names in lower case");
    }
    // The other names kubectl resolves must be free as well.
    let names = &crd.spec.names;
    for name in [names.plural.as_str(), names.singular.as_deref().unwrap_or_default()] {
        assert!(!BUILT_IN_NAMES.contains(&name) && !BUILT_IN_SHORT_NAMES.contains(&name), "{name:?}");
    }
}

#[test]
fn the_short_name_is_rgc() {
    assert_eq!(roster_crds::crd().spec.names.short_names, Some(vec!["rgc".to_owned()]));
}
