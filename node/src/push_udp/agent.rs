//! Which clients get UDP pushes: Nacos pushes only to the SDKs it knows
//! listen for them, judged by the `User-Agent` of their list requests
//! (`UdpPushService.canEnablePush` with `ClientInfo` and the `SwitchDomain`
//! defaults of Nacos 2.5).
//!
//! The agent is `<type>:v<version>`, for example `Nacos-Java-Client:v1.0.0`
//! (which the official Node.js SDK sends too). Java and Go clients from
//! 0.1.0 on, C from 1.0.12 (also `vip-client4cpp`), C# from 0.9.0 and the
//! DNS-F agent from 0.4.3 (Nacos compares it with its *Python* switch) are
//! pushed to. Every other agent, including the Python SDK's and a missing
//! or unparsable version, only polls.

/// The minimum version of each agent type that gets pushes, as
/// `(prefix, major, minor, patch)`; the first matching prefix decides.
const PUSH_AGENTS: &[(&str, [u64; 3])] = &[
    ("Nacos-Go-Client", [0, 1, 0]),
    ("Nacos-Java-Client", [0, 1, 0]),
    ("Nacos-C-Client", [1, 0, 12]),
    ("vip-client4cpp", [1, 0, 12]),
    ("Nacos-CSharp-Client", [0, 9, 0]),
    ("Nacos-DNS", [0, 4, 3]),
];

/// Whether a client sending `user_agent` listens for UDP pushes.
pub fn push_capable(user_agent: &str) -> bool {
    let Some(&(_, minimum)) = PUSH_AGENTS.iter().find(|(prefix, _)| user_agent.starts_with(prefix)) else {
        return false;
    };
    version(user_agent).is_some_and(|v| v >= minimum)
}

/// The `major.minor.patch` after `:v`, missing parts 0; `None` when
/// there is no version or its first part is not a number.
fn version(user_agent: &str) -> Option<[u64; 3]> {
    let start = user_agent.find(":v")? + 2;
    let text = &user_agent[start..];
    let mut parts = [0u64; 3];
    for (slot, part) in parts.iter_mut().zip(text.split('.')) {
        // "1.0.0-SNAPSHOT" and "2.1.0 (extra)": the leading digits count.
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        *slot = digits.parse().ok()?;
    }
    text.starts_with(|c: char| c.is_ascii_digit()).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_agents_from_their_minimum_version_get_pushes() {
        for agent in [
            "Nacos-Java-Client:v1.0.0",
            "Nacos-Java-Client:v0.1.0",
            "Nacos-Go-Client:v2.3.1",
            "Nacos-C-Client:v1.0.12",
            "vip-client4cpp:v1.1",
            "Nacos-CSharp-Client:v1.3.0",
            "Nacos-DNS:v0.4.3",
            "Nacos-Java-Client:v1.4.1-SNAPSHOT",
        ] {
            assert!(push_capable(agent), "{agent}");
        }
    }

    #[test]
    fn other_agents_and_old_versions_only_poll() {
        for agent in [
            "",
            "curl/8.5.0",
            "Nacos-Python-Client:v2.0.11",
            "Nacos-Java-Client",
            "Nacos-Java-Client:v",
            "Nacos-Java-Client:vx.1",
            "Nacos-Java-Client:v0.0.9",
            "Nacos-C-Client:v1.0.11",
            "Nacos-DNS:v0.4.2",
            "Nacos-Server:v2.5.1",
        ] {
            assert!(!push_capable(agent), "{agent}");
        }
    }
}
