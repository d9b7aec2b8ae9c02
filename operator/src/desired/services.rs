//! The two Services of a cluster.
//!
//! * The headless Service gives every pod a stable DNS name
//!   (`demo-0.demo-headless.ns.svc`), the member identity. It publishes
//!   not-ready addresses because members must find each other before they
//!   can turn ready: readiness needs a Raft leader, and a leader needs a
//!   quorum of members that can already talk.
//! * The client Service load-balances applications over ready members on
//!   the HTTP and client gRPC ports; the peer port stays internal.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Target;
use crate::names::{self, GRPC_PORT, HTTP_PORT, PEER_PORT};

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// The headless Service (`clusterIP: None`, `publishNotReadyAddresses`).
pub fn headless_service(t: &Target<'_>) -> Service {
    Service {
        metadata: t.meta(names::headless_service(&t.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(&t.name)),
            ports: Some(vec![port("http", HTTP_PORT), port("grpc", GRPC_PORT), port("peer", PEER_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The client Service (ClusterIP, ready members only, no peer port).
pub fn client_service(t: &Target<'_>) -> Service {
    Service {
        metadata: t.meta(names::client_service(&t.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names::selector_labels(&t.name)),
            ports: Some(vec![port("http", HTTP_PORT), port("grpc", GRPC_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_support::cluster;

    #[test]
    fn headless_publishes_not_ready_addresses_with_all_ports() {
        let rc = cluster(3);
        let t = Target::new(&rc).expect("target");
        let svc = headless_service(&t);
        assert_eq!(svc.metadata.name.as_deref(), Some("demo-headless"));
        assert_eq!(svc.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let ports: Vec<i32> = spec.ports.expect("ports").iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![8848, 9848, 9849]);
        assert_eq!(spec.selector, Some(names::selector_labels("demo")));
    }

    #[test]
    fn client_service_hides_the_peer_port() {
        let rc = cluster(3);
        let t = Target::new(&rc).expect("target");
        let spec = client_service(&t).spec.expect("spec");
        assert_eq!(spec.publish_not_ready_addresses, None);
        let ports: Vec<i32> = spec.ports.expect("ports").iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![8848, 9848]);
    }
}
