//! The cluster secret members sign peer requests with (issue #7).
//!
//! Created once, when absent: `<name>-cluster-secret` with one key,
//! [`SECRET_KEY`], holding 32 random bytes as 64 hex characters. It is never
//! applied (server-side apply would replace the value on every reconcile and
//! split the cluster between old and new secrets); a Secret of that name
//! that already exists, made by the operator earlier or by an administrator
//! beforehand, is used as it is. It is owned by the RegistryCluster, so it
//! goes with it. Every pod mounts it read-only at [`SECRET_DIR`] and gets
//! `ROSTER_CLUSTER_SECRET_FILE` pointing at the key.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use ring::rand::{SecureRandom, SystemRandom};

use super::Target;
use crate::names;
use crate::{Error, Result};

/// The key of the secret value in the Secret.
pub const SECRET_KEY: &str = "cluster-secret";
/// Where the pods mount the Secret.
pub const SECRET_DIR: &str = "/etc/roster/cluster-secret";

/// A new cluster Secret with a fresh random value.
pub fn cluster_secret(t: &Target<'_>) -> Result<Secret> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::InvalidResource("the system random generator failed".into()))?;
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Secret {
        metadata: t.meta(names::cluster_secret(&t.name)),
        type_: Some("Opaque".to_owned()),
        string_data: Some(BTreeMap::from([(SECRET_KEY.to_owned(), value)])),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::cluster;
    use super::*;

    #[test]
    fn every_secret_is_new_random_and_owned() {
        let rc = cluster(3);
        let t = Target::new(&rc).expect("target");
        let a = cluster_secret(&t).expect("secret");
        let b = cluster_secret(&t).expect("secret");
        assert_eq!(a.metadata.name.as_deref(), Some("demo-cluster-secret"));
        assert_eq!(a.metadata.owner_references.as_ref().map(|o| o[0].kind.as_str()), Some("RegistryCluster"));
        let value = |s: &Secret| s.string_data.as_ref().and_then(|d| d.get(SECRET_KEY).cloned()).expect("value");
        assert_eq!(value(&a).len(), 64);
        assert!(value(&a).bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(value(&a), value(&b));
    }
}
