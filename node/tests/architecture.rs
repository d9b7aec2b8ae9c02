//! Keeps the node's architecture (`docs/ARCHITECTURE.md`): reads every
//! source file under `node/src`, resolves the `crate::`, `super::` and
//! `self::` paths of its production code (the code before its
//! `#[cfg(test)] mod ...`) to modules, and fails
//!
//! * when modules import each other in a cycle that is more than a module
//!   and its own children (`distro` and `distro::sync` may use each other,
//!   so may `naming::client` and `naming::store`; `cluster` and `distro`
//!   may not), counted twice: with paths as written
//!   (an import of `crate::cluster::Membership` goes to `cluster`) and with
//!   re-exports resolved (it goes to `cluster::membership`);
//! * when a file has more than [`MAX_CODE_LINES`] lines of production code
//!   (blank and comment lines not counted).
//!
//! Run `cargo test -p roster-node --test integration architecture:: --
//! --nocapture` to see the report it checks; set `ROSTER_ARCHITECTURE_SRC`
//! to another `src` folder (say, an older commit's, from `git archive`) to
//! check that one instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most lines of production code in one file.
const MAX_CODE_LINES: usize = 500;

/// Files still over the limit, each with the change that splits it. The
/// list may only shrink: a listed file that fits is an error too, so that
/// its entry is removed with the split.
const KNOWN_OVERSIZE: &[(&str, &str)] = &[];

/// One source file: its module path and its production code.
struct Source {
    module: String,
    code: String,
}

fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    if parts.is_empty() {
        "crate".to_owned()
    } else {
        format!("crate::{}", parts.join("::"))
    }
}

/// The code before the file's test module, without comment lines.
fn production_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty() && !l.trim().starts_with("#["));
            if next.is_some_and(|l| l.trim_start().starts_with("mod ")) {
                end = i;
                break;
            }
        }
    }
    lines[..end].iter().filter(|l| !l.trim_start().starts_with("//")).copied().collect::<Vec<_>>().join("\n")
}

fn code_lines(code: &str) -> usize {
    code.lines().filter(|l| !l.trim().is_empty()).count()
}

fn sources(root: &Path) -> Vec<(PathBuf, Source)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(dir).expect("read src").map(|e| e.expect("dir entry").path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    files
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "main.rs"))
        .map(|path| {
            let rel = path.strip_prefix(root).expect("under src").to_path_buf();
            let text = std::fs::read_to_string(&path).expect("read source");
            let source = Source { module: module_of(&rel), code: production_code(&text) };
            (rel, source)
        })
        .collect()
}

/// Expands a use tree (`a::{b, c::d as e, f::*}`) into full paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        return vec![path.trim_end_matches("::*").to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .flat_map(expand_use)
        .map(|p| if p == "self" { prefix.to_owned() } else { format!("{prefix}::{p}") })
        .collect()
}

/// Paths of the `use` declarations of `code`, with whether each is a `pub use`.
fn use_paths(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let head = before[line_start..].trim();
        let is_decl = head.is_empty() || head.starts_with("pub") || head.ends_with(';') || head.ends_with('}');
        let Some(end) = rest[at..].find(';') else { break };
        if is_decl && (head.is_empty() || head.starts_with("pub")) {
            for path in expand_use(&rest[at + 4..at + end]) {
                out.push((head.starts_with("pub"), path));
            }
        }
        rest = &rest[at + end..];
    }
    out
}

/// Paths written inline (`crate::limits::rate::check_grpc(..)`).
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            let prev = code[..at].chars().next_back();
            from = at + start.len();
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String =
                code[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            out.push(path.trim_end_matches(':').to_owned());
        }
    }
    out
}

/// `path` as written in `module` (`super::`, `self::`) made absolute.
fn absolute(module: &str, is_mod_file: bool, path: &str) -> Option<String> {
    let mut segs: Vec<&str> = module.split("::").collect();
    let mut rest: Vec<&str> = path.split("::").collect();
    match rest.first().copied() {
        Some("crate") => return Some(path.to_owned()),
        Some("self") => {
            rest.remove(0);
        }
        Some("super") => {
            while rest.first() == Some(&"super") {
                rest.remove(0);
                segs.pop()?;
            }
            let _ = is_mod_file;
        }
        _ => return None,
    }
    segs.extend(rest);
    Some(segs.join("::"))
}

struct Crate {
    modules: BTreeSet<String>,
    /// module → exported name → absolute target path.
    exports: BTreeMap<String, BTreeMap<String, String>>,
}

impl Crate {
    /// The module `path` lands in: the longest module prefix, following
    /// re-exports of the crate root always and of other modules when
    /// `follow` is set.
    fn resolve(&self, path: &str, follow: bool, depth: usize) -> Option<String> {
        let segs: Vec<&str> = path.split("::").collect();
        let mut module = None;
        let mut used = 0;
        for n in (1..=segs.len()).rev() {
            let candidate = segs[..n].join("::");
            if self.modules.contains(&candidate) {
                module = Some(candidate);
                used = n;
                break;
            }
        }
        let module = module?;
        if depth < 8 && used < segs.len() && (follow || module == "crate") {
            if let Some(target) = self.exports.get(&module).and_then(|e| e.get(segs[used])) {
                let mut full = target.clone();
                for s in &segs[used + 1..] {
                    full = format!("{full}::{s}");
                }
                return self.resolve(&full, follow, depth + 1).or(Some(module));
            }
        }
        Some(module)
    }
}

fn is_within(module: &str, ancestor: &str) -> bool {
    module == ancestor || module.starts_with(&format!("{ancestor}::"))
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(edges) = s.graph.get(v) {
            for w in edges {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Whether a cycle stays inside one module and its own children (one
/// subsystem), rather than tying subsystems together: its modules share an
/// ancestor below the crate root.
fn is_family(component: &[String]) -> bool {
    let Some(first) = component.first() else { return true };
    let segs: Vec<&str> = first.split("::").collect();
    (2..=segs.len()).rev().map(|n| segs[..n].join("::")).any(|m| component.iter().all(|o| is_within(o, &m)))
}

#[test]
fn modules_import_each_other_in_no_cycle_and_files_stay_small() {
    let root = std::env::var_os("ROSTER_ARCHITECTURE_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let files = sources(&root);
    let modules: BTreeSet<String> = files.iter().map(|(_, s)| s.module.clone()).collect();
    let mut exports = BTreeMap::new();
    let mut imports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rel, source) in &files {
        let is_mod_file = rel.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let mut paths = Vec::new();
        for (public, path) in use_paths(&source.code) {
            let Some(abs) = absolute(&source.module, is_mod_file, &path) else { continue };
            if public {
                let name = abs.rsplit("::").next().unwrap_or_default().to_owned();
                exports.entry(source.module.clone()).or_insert_with(BTreeMap::new).insert(name, abs.clone());
            }
            paths.push(abs);
        }
        paths.extend(inline_paths(&source.code).iter().filter_map(|p| absolute(&source.module, is_mod_file, p)));
        imports.insert(source.module.clone(), paths);
    }
    let krate = Crate { modules, exports };
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (follow, name) in [(false, "as written"), (true, "re-exports resolved")] {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, paths) in &imports {
            let edges = graph.entry(module.clone()).or_default();
            for path in paths {
                if let Some(target) = krate.resolve(path, follow, 0) {
                    if target != *module && target != "crate" {
                        edges.insert(target);
                    }
                }
            }
        }
        let edges: usize = graph.values().map(BTreeSet::len).sum();
        let found = cycles(&graph);
        let (family, foreign): (Vec<_>, Vec<_>) = found.into_iter().partition(|c| is_family(c));
        report.push(format!(
            "imports {name}: {} modules, {edges} edges, {} cycles within a module and its children, {} other cycles",
            graph.len(),
            family.len(),
            foreign.len()
        ));
        for c in &family {
            report.push(format!("  allowed: {}", c.join(" <-> ")));
        }
        for c in foreign {
            failures.push(format!("import cycle ({name}): {}", c.join(" <-> ")));
        }
    }
    let mut sizes: Vec<(usize, String)> =
        files.iter().map(|(rel, s)| (code_lines(&s.code), rel.to_string_lossy().replace('\\', "/"))).collect();
    sizes.sort_by(|a, b| b.cmp(a));
    report.push(format!("largest files (lines of production code, limit {MAX_CODE_LINES}):"));
    for (lines, file) in sizes.iter().take(8) {
        report.push(format!("  {lines:>4} {file}"));
    }
    for (lines, file) in &sizes {
        let known = KNOWN_OVERSIZE.iter().find(|(f, _)| f == file);
        match (*lines > MAX_CODE_LINES, known) {
            (true, None) => {
                failures.push(format!("{file} has {lines} lines of production code (limit {MAX_CODE_LINES})"))
            }
            (true, Some((_, why))) => report.push(format!("  known oversize: {file} ({lines}): {why}")),
            (false, Some(_)) => failures.push(format!("{file} fits now ({lines}): remove it from KNOWN_OVERSIZE")),
            (false, None) => {}
        }
    }
    for (file, _) in KNOWN_OVERSIZE {
        if !sizes.iter().any(|(_, f)| f == file) {
            failures.push(format!("{file} is gone: remove it from KNOWN_OVERSIZE"));
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "architecture check failed:\n{}", failures.join("\n"));
}

#[test]
fn the_checker_sees_what_it_checks() {
    assert_eq!(module_of(Path::new("lib.rs")), "crate");
    assert_eq!(module_of(Path::new("peer/mod.rs")), "crate::peer");
    assert_eq!(module_of(Path::new("cluster/lookup/file.rs")), "crate::cluster::lookup::file");
    let mut paths = expand_use("crate::api::{grpc, http::{self, beat as b}, ClientState}");
    paths.sort();
    assert_eq!(paths, ["crate::api::ClientState", "crate::api::grpc", "crate::api::http", "crate::api::http::beat"]);
    assert_eq!(absolute("crate::distro::sync", false, "super::Distro").as_deref(), Some("crate::distro::Distro"));
    assert_eq!(absolute("crate::peer", true, "self::faults::Faults").as_deref(), Some("crate::peer::faults::Faults"));
    let code = "use crate::a::X;\npub use self::b::Y;\nfn f() { crate::c::go(); let s = \"x\"; }";
    assert_eq!(use_paths(code), [(false, "crate::a::X".to_owned()), (true, "self::b::Y".to_owned())]);
    // Inline paths include those of `use` lines (the same edges again).
    assert_eq!(inline_paths(code), ["crate::a::X", "crate::c::go"]);
    let text = "fn a() {}\n// crate::commented::Out\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n";
    assert_eq!(production_code(text), "fn a() {}");
    // A cycle across two top modules is found and is not a family; one
    // between a module and its child is.
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("crate::a".into(), ["crate::b".to_string()].into());
    graph.insert("crate::b".into(), ["crate::a".to_string()].into());
    graph.insert("crate::c".into(), ["crate::c::d".to_string()].into());
    graph.insert("crate::c::d".into(), ["crate::c".to_string()].into());
    graph.insert("crate::e::f".into(), ["crate::e::g".to_string()].into());
    graph.insert("crate::e::g".into(), ["crate::e::f".to_string()].into());
    let found = cycles(&graph);
    assert_eq!(found.len(), 3);
    assert_eq!(found.iter().filter(|c| is_family(c)).count(), 2, "{found:?}");
    assert!(!is_family(&["crate::a".to_owned(), "crate::b".to_owned()]));
    assert!(!is_family(&["crate::a::x".to_owned(), "crate::b::y".to_owned()]));
}
