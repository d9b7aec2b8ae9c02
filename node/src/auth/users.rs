//! The users file: who may log in and what each user may do, per namespace.
//!
//! ```json
//! {
//!   "users": [
//!     {"username": "admin",  "password": "$pbkdf2-sha256$i=600000$...", "role": "admin"},
//!     {"username": "viewer", "password": "$pbkdf2-sha256$i=600000$...", "role": "read-only"},
//!     {"username": "orders", "password": "$pbkdf2-sha256$i=600000$...",
//!      "permissions": {"orders": "read-write", "*": "read"}}
//!   ]
//! }
//! ```
//!
//! A user's rights are the union of its role and its `permissions`:
//! `admin` reads and writes every namespace, `read-only` reads every
//! namespace; `permissions` maps a namespace id (`public` for the default
//! namespace) or `*` (every namespace) to `read` or `read-write`. Rights only
//! add up; there is no deny. The file is read once at start-up; unknown
//! fields, duplicate names and plain-text passwords are refused.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::password::PasswordHash;
use crate::naming::validate;

/// What a request does to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Queries, lists, subscriptions.
    Read,
    /// Registrations, deregistrations, updates, beats, service changes.
    Write,
}

impl Action {
    /// `read` or `write`, for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
        }
    }
}

/// A right on a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    /// May read.
    Read,
    /// May read and write.
    ReadWrite,
}

impl Grant {
    fn allows(self, action: Action) -> bool {
        match action {
            Action::Read => true,
            Action::Write => self == Grant::ReadWrite,
        }
    }
}

/// A predefined set of rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads and writes every namespace (Nacos's `globalAdmin`).
    Admin,
    /// Reads every namespace, writes none.
    ReadOnly,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    permissions: BTreeMap<String, Grant>,
}

/// The namespace key meaning "every namespace".
pub const ANY_NAMESPACE: &str = "*";

/// One user of the file.
#[derive(Debug, Clone)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The stored password hash.
    pub password: PasswordHash,
    /// Holds the `admin` role.
    pub admin: bool,
    /// The right on every namespace, from the role or `*`.
    everywhere: Option<Grant>,
    /// Rights on single namespaces.
    namespaces: BTreeMap<String, Grant>,
}

impl User {
    /// Whether this user may do `action` in `namespace` (already normalised,
    /// `public` for the default one).
    pub fn allows(&self, namespace: &str, action: Action) -> bool {
        self.everywhere.is_some_and(|g| g.allows(action))
            || self.namespaces.get(namespace).is_some_and(|g| g.allows(action))
    }
}

/// Why a users file was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("cannot read the users file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read, its content is refused.
    #[error("users file {path}: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        error: Box<UsersError>,
    },
    /// Not the JSON of a users file.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No users at all.
    #[error("no users: nobody could log in")]
    NoUsers,
    /// A user name that is empty, too long or not printable.
    #[error("user name '{0}' must be 1..=128 printable characters")]
    Name(String),
    /// A password entry that is no valid hash.
    #[error("user '{user}': {error}")]
    Password {
        /// The user.
        user: String,
        /// What is wrong with the hash.
        error: super::password::HashError,
    },
    /// The default namespace written as `''`.
    #[error("user '{0}': name the default namespace 'public', not ''")]
    EmptyNamespace(String),
    /// A namespace name that is not one.
    #[error("user '{user}': {error}")]
    Namespace {
        /// The user.
        user: String,
        /// What the namespace check said.
        error: crate::error::Error,
    },
    /// A user without any right.
    #[error("user '{0}' has neither a role nor permissions")]
    NoRights(String),
    /// A user listed twice.
    #[error("user '{0}' is listed twice")]
    Twice(String),
}

/// Every user, by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
}

impl Users {
    /// Reads and checks the users file at `path`.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| UsersError::Read { path: path.display().to_string(), source })?;
        Users::parse(&text)
            .map_err(|error| UsersError::Invalid { path: path.display().to_string(), error: Box::new(error) })
    }

    /// Parses and checks the JSON of a users file.
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let file: UsersFile = serde_json::from_str(text)?;
        if file.users.is_empty() {
            return Err(UsersError::NoUsers);
        }
        let mut by_name = HashMap::new();
        for entry in file.users {
            let name = entry.username.trim().to_owned();
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(UsersError::Name(entry.username));
            }
            let password = PasswordHash::parse(&entry.password)
                .map_err(|error| UsersError::Password { user: name.clone(), error })?;
            let mut everywhere = match entry.role {
                Some(Role::Admin) => Some(Grant::ReadWrite),
                Some(Role::ReadOnly) => Some(Grant::Read),
                None => None,
            };
            let mut namespaces = BTreeMap::new();
            for (namespace, grant) in entry.permissions {
                if namespace == ANY_NAMESPACE {
                    everywhere = everywhere.max(Some(grant));
                    continue;
                }
                if namespace.trim().is_empty() {
                    return Err(UsersError::EmptyNamespace(name));
                }
                let namespace = validate::namespace(Some(&namespace))
                    .map_err(|error| UsersError::Namespace { user: name.clone(), error })?;
                let merged = namespaces.get(&namespace).copied().max(Some(grant)).unwrap_or(grant);
                namespaces.insert(namespace, merged);
            }
            if everywhere.is_none() && namespaces.is_empty() {
                return Err(UsersError::NoRights(name));
            }
            let user =
                User { name: name.clone(), password, admin: entry.role == Some(Role::Admin), everywhere, namespaces };
            if by_name.insert(name.clone(), user).is_some() {
                return Err(UsersError::Twice(name));
            }
        }
        Ok(Users { by_name })
    }

    /// The user called `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// Any user's hash (to spend the same time on unknown names as on known ones).
    pub fn any_hash(&self) -> Option<&PasswordHash> {
        self.by_name.values().next().map(|u| &u.password)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no users (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::MIN_ITERATIONS;

    fn hash() -> String {
        PasswordHash::new("pw", MIN_ITERATIONS).expect("hash").encode()
    }

    #[test]
    fn roles_and_permissions_add_up() {
        let h = hash();
        let text = format!(
            r#"{{"users": [
                {{"username": "admin", "password": "{h}", "role": "admin"}},
                {{"username": "viewer", "password": "{h}", "role": "read-only"}},
                {{"username": "orders", "password": "{h}", "permissions": {{"orders": "read-write", "*": "read"}}}},
                {{"username": "ops", "password": "{h}", "role": "read-only", "permissions": {{"public": "read-write"}}}}
            ]}}"#
        );
        let users = Users::parse(&text).expect("valid");
        assert_eq!(users.len(), 4);
        let admin = users.get("admin").expect("admin");
        assert!(admin.admin && admin.allows("any", Action::Write));
        let viewer = users.get("viewer").expect("viewer");
        assert!(viewer.allows("public", Action::Read) && viewer.allows("x", Action::Read));
        assert!(!viewer.allows("public", Action::Write) && !viewer.admin);
        let orders = users.get("orders").expect("orders");
        assert!(orders.allows("orders", Action::Write));
        assert!(orders.allows("public", Action::Read));
        assert!(!orders.allows("public", Action::Write));
        let ops = users.get("ops").expect("ops");
        assert!(ops.allows("public", Action::Write) && !ops.allows("other", Action::Write));
        assert!(users.get("nobody").is_none());
    }

    #[test]
    fn bad_files_are_refused() {
        let h = hash();
        for (bad, why) in [
            (r#"{"users": []}"#.to_owned(), "no users"),
            (r#"{"users": [{"username": "a", "password": "plain", "role": "admin"}]}"#.to_owned(), "plain text"),
            (format!(r#"{{"users": [{{"username": "a", "password": "{h}"}}]}}"#), "no rights"),
            (format!(r#"{{"users": [{{"username": "a", "password": "{h}", "role": "root"}}]}}"#), "unknown role"),
            (
                format!(r#"{{"users": [{{"username": "a", "password": "{h}", "permissions": {{"x": "write"}}}}]}}"#),
                "unknown grant",
            ),
            (
                format!(r#"{{"users": [{{"username": "a", "password": "{h}", "permissions": {{"": "read"}}}}]}}"#),
                "blank namespace",
            ),
            (
                format!(
                    r#"{{"users": [{{"username": "a", "password": "{h}", "role": "admin"}}, {{"username": "a", "password": "{h}", "role": "admin"}}]}}"#
                ),
                "duplicate",
            ),
            (
                format!(r#"{{"users": [{{"username": "a", "password": "{h}", "role": "admin", "x": 1}}]}}"#),
                "unknown field",
            ),
            (format!(r#"{{"users": [{{"username": " ", "password": "{h}", "role": "admin"}}]}}"#), "blank name"),
        ] {
            assert!(Users::parse(&bad).is_err(), "{why}");
        }
    }
}
