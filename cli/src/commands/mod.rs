//! One file per group of subcommands; each builds a [`crate::output::Report`]
//! (or, for `watch`, prints as pushes arrive).

pub mod catalog;
pub mod cluster;
pub mod instance;
pub mod status;
pub mod watch;

use crate::error::{Error, Result};

/// The service a command names: `--namespace`, `--group` and the name
/// (which may carry its group as `group@@name`, as in Nacos).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// Namespace id (`public` by default).
    pub namespace: String,
    /// Group (`DEFAULT_GROUP` by default).
    pub group: String,
    /// Bare service name.
    pub name: String,
}

impl ServiceRef {
    /// The service `name` in `group` and `namespace`; `group@@name` names
    /// its group itself (and must agree with `--group` if both are given).
    pub fn new(namespace: &str, group: Option<&str>, name: &str) -> Result<ServiceRef> {
        let (from_name, bare) = match name.split_once("@@") {
            Some((g, n)) => (Some(g), n),
            None => (None, name),
        };
        if bare.trim().is_empty() {
            return Err(Error::bad_input("the service name must not be empty"));
        }
        let group = match (group, from_name) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::bad_input(format!("--group {a} and the name's group {b} disagree")));
            }
            (Some(g), _) | (None, Some(g)) => g,
            (None, None) => "DEFAULT_GROUP",
        };
        Ok(ServiceRef { namespace: namespace.to_owned(), group: group.to_owned(), name: bare.to_owned() })
    }

    /// `group@@name`.
    pub fn grouped(&self) -> String {
        format!("{}@@{}", self.group, self.name)
    }

    /// The v1 API's parameters naming this service.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("namespaceId", self.namespace.clone()),
            ("groupName", self.group.clone()),
            ("serviceName", self.name.clone()),
        ]
    }
}

/// `&[(&str, String)]` as the `&[(&str, &str)]` requests take.
pub fn borrowed<'a>(params: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_may_carry_their_group() {
        let s = ServiceRef::new("public", None, "pay@@orders").expect("valid");
        assert_eq!((s.group.as_str(), s.name.as_str()), ("pay", "orders"));
        assert_eq!(ServiceRef::new("public", None, "orders").expect("valid").grouped(), "DEFAULT_GROUP@@orders");
        assert!(ServiceRef::new("public", Some("a"), "b@@orders").is_err());
        assert!(ServiceRef::new("public", None, " ").is_err());
        assert!(ServiceRef::new("public", None, "g@@").is_err());
    }
}
