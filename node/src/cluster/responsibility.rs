//! Distro responsibility: which member owns an ip:port client.
//!
//! A port of Nacos's `DistroMapper`: the tag (for ip:port clients,
//! `"ip:port"`) is hashed with Java's `String.hashCode`, reduced with
//! `abs(hash % Integer.MAX_VALUE)`, and taken modulo the number of healthy
//! members over their **sorted** addresses. Every node that sees the same
//! healthy list therefore names the same owner without talking to the others.
//!
//! Reproducing Java's hash exactly is not needed for Roster nodes to agree
//! with each other, but it keeps the distribution identical to a Nacos
//! cluster with the same members, which makes migrations and comparisons
//! easy to reason about.
//!
//! Standalone nodes are always responsible; that decision belongs to the
//! caller ([`Membership::responsibility`](super::Membership::responsibility)),
//! which knows the lookup mode.

/// Java's `String.hashCode`: `h = 31 * h + c` over the UTF-16 code units,
/// with 32-bit wrapping arithmetic.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// Nacos `distroHash`: `abs(hashCode % Integer.MAX_VALUE)`. The modulo first
/// keeps `abs` away from `i32::MIN`.
pub fn distro_hash(tag: &str) -> u32 {
    (java_string_hash(tag) % i32::MAX).unsigned_abs()
}

/// Index of the responsible member among `n` sorted healthy members, or
/// `None` when there are none.
pub fn responsible_index(tag: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    // u32 → usize is lossless on every platform Roster builds for (≥ 32 bit).
    Some(distro_hash(tag) as usize % n)
}

/// The member responsible for `tag` among `healthy_sorted`, the sorted
/// addresses of the `UP` and `SUSPICIOUS` members; `None` when the list is
/// empty (no one is responsible yet).
pub fn responsible_member<'a, S: AsRef<str>>(tag: &str, healthy_sorted: &'a [S]) -> Option<&'a str> {
    responsible_index(tag, healthy_sorted.len()).and_then(|i| healthy_sorted.get(i)).map(AsRef::as_ref)
}

/// Whether `local` is responsible for `tag` (cluster mode). As in Nacos: an
/// empty healthy list means "not responsible" (membership not ready), and a
/// local member missing from a non-empty list is responsible (it keeps
/// serving rather than forwarding to nobody).
pub fn is_responsible<S: AsRef<str>>(local: &str, tag: &str, healthy_sorted: &[S]) -> bool {
    if healthy_sorted.is_empty() {
        return false;
    }
    if !healthy_sorted.iter().any(|m| m.as_ref() == local) {
        return true;
    }
    responsible_member(tag, healthy_sorted) == Some(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_code_values() {
        // Values computed with Java's algorithm (UTF-16 units, h*31+c, i32 wrap).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("127.0.0.1:8080"), -35_736_627);
        assert_eq!(java_string_hash("10.0.0.1:8080"), -1_643_343_804);
        assert_eq!(java_string_hash("192.168.1.20:65535"), -968_897_384);
        assert_eq!(java_string_hash("10.1.2.3:12345#true"), -880_320_243);
        // Collisions and the i32::MIN case are Java's too.
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // Non-ASCII: one UTF-16 unit, and a surrogate pair.
        assert_eq!(java_string_hash("é"), 233);
        assert_eq!(java_string_hash("😀"), 1_772_899);
    }

    #[test]
    fn distro_hash_is_never_negative() {
        assert_eq!(distro_hash("127.0.0.1:8080"), 35_736_627);
        // i32::MIN % i32::MAX == -1, so abs is 1 (no overflow).
        assert_eq!(distro_hash("polygenelubricants"), 1);
        assert_eq!(distro_hash(""), 0);
    }

    #[test]
    fn indexes_match_java() {
        // (tag, [index for n = 1, 2, 3, 5]) computed with the Java formula.
        let cases: [(&str, [usize; 4]); 6] = [
            ("hello", [0, 0, 1, 2]),
            ("127.0.0.1:8080", [0, 1, 0, 2]),
            ("10.0.0.1:8080", [0, 0, 0, 4]),
            ("192.168.1.20:65535", [0, 0, 2, 4]),
            ("polygenelubricants", [0, 1, 1, 1]),
            ("😀", [0, 1, 1, 4]),
        ];
        for (tag, want) in cases {
            for (n, w) in [1, 2, 3, 5].into_iter().zip(want) {
                assert_eq!(responsible_index(tag, n), Some(w), "{tag} over {n}");
            }
        }
        assert_eq!(responsible_index("hello", 0), None);
    }

    #[test]
    fn responsible_member_picks_from_sorted_list() {
        let members = ["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"];
        assert_eq!(responsible_member("hello", &members), Some("10.0.0.2:8848"));
        assert_eq!(responsible_member("127.0.0.1:8080", &members), Some("10.0.0.1:8848"));
        assert_eq!(responsible_member("192.168.1.20:65535", &members), Some("10.0.0.3:8848"));
        let none: [&str; 0] = [];
        assert_eq!(responsible_member("hello", &none), None);
        let one = vec!["10.0.0.9:8848".to_string()];
        assert_eq!(responsible_member("anything", &one), Some("10.0.0.9:8848"));
    }

    #[test]
    fn exactly_one_member_is_responsible() {
        let members: Vec<String> = (1..=5).map(|i| format!("10.0.0.{i}:8848")).collect();
        for n in 1..=members.len() {
            let list = &members[..n];
            for port in 0..200 {
                let tag = format!("192.168.0.7:{port}");
                let owners = list.iter().filter(|m| is_responsible(m, &tag, list)).count();
                assert_eq!(owners, 1, "{tag} over {n}");
            }
        }
    }

    #[test]
    fn empty_and_missing_local() {
        let none: [&str; 0] = [];
        assert!(!is_responsible("10.0.0.1:8848", "hello", &none));
        // Not in the list: Nacos keeps the local node responsible.
        assert!(is_responsible("10.0.0.9:8848", "hello", &["10.0.0.1:8848", "10.0.0.2:8848"]));
        assert!(is_responsible("10.0.0.2:8848", "hello", &["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"]));
        assert!(!is_responsible("10.0.0.1:8848", "hello", &["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"]));
    }
}
