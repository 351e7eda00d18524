//! The floors of src/ (DESIGN.md, "Floors") hold: no imports go round in a circle, and
//! every module imports only from its own floor or lower ones.
//!
//! Reads every file of src/ and draws the graph of `crate::` paths between modules (in
//! `use` items, grouped ones too, and inline paths), leaving out `#[cfg(test)]` items,
//! comments and string literals. A folder of src/ is one module; main.rs's
//! `source_aws_billing::` paths are main's imports; `$crate::` in macros is not an import,
//! and the crate-root macros (`crate::warn!`, `use crate::{debug, info}`) are log's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// DESIGN.md's Floors. A module imports only from its own floor or lower ones.
#[rustfmt::skip]
const FLOORS: &[(u8, &[&str])] = &[
    (1, &["files", "yaml", "keys", "urls", "log",
          "schedule", "retry", "decimal", "socket", "signal", "spelling"]),
    (2, &["breakdown", "event", "event_de", "summary", "revise", "answer", "costexplorer", "sign",
          "refusals", "eventbridge", "target", "focus", "schema"]),
    (3, &["http", "bounds", "heartbeat", "spend", "snapshot", "spool", "state", "credentials"]),
    (4, &["config"]),
    (5, &["service", "status", "cli"]),
    (6, &["main", "lib"]),
];

/// The macros log.rs exports at the crate root: naming them is importing log.
const LOG_MACROS: &[&str] = &["debug", "info", "warn", "error"];

/// A file of src/: its path as shown (`src/config.rs`) and its text.
struct Source {
    path: String,
    text: String,
}

/// Module `from` names module `to` at `path:line`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    path: String,
    line: usize,
}

#[test]
fn no_module_imports_in_a_circle() {
    let report = circle_report(&edges(&read_src()));
    assert!(report.is_empty(), "\n{report}");
}

#[test]
fn every_module_is_on_a_floor_and_imports_only_from_its_floor_or_below() {
    let sources = read_src();
    let report = floor_report(&sources, &edges(&sources));
    assert!(report.is_empty(), "\n{report}");
}

/// Every .rs file under src/, sorted by path.
fn read_src() -> Vec<Source> {
    fn walk(dir: &Path, shown: &str, out: &mut Vec<Source>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("read src/");
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let shown = format!("{shown}/{name}");
            if path.is_dir() {
                walk(&path, &shown, out);
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push(Source { path: shown, text });
            }
        }
    }
    let mut sources = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "src",
        &mut sources,
    );
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(!sources.is_empty(), "no .rs file under src/");
    sources
}

/// The module a file of src/ belongs to: `src/x.rs` and `src/x/...` are `x`.
fn module_of(path: &str) -> String {
    let inside = path.strip_prefix("src/").unwrap_or(path);
    let first = inside.split('/').next().unwrap_or(inside);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// How a module is named in messages: `src/x.rs`, or `src/x/` for a folder.
fn shown_module(sources: &[Source], module: &str) -> String {
    let file = format!("src/{module}.rs");
    if sources.iter().any(|s| s.path == file) {
        file
    } else {
        format!("src/{module}/")
    }
}

fn floor_of(module: &str) -> Option<u8> {
    FLOORS
        .iter()
        .find(|(_, modules)| modules.contains(&module))
        .map(|(floor, _)| *floor)
}

/// Every import of one module by another, in file and line order.
fn edges(sources: &[Source]) -> Vec<Edge> {
    let modules: BTreeSet<String> = sources.iter().map(|s| module_of(&s.path)).collect();
    let mut edges = Vec::new();
    for source in sources {
        let from = module_of(&source.path);
        let code = blank_cfg_test(&blank_comments_and_strings(&source.text));
        for (line, name) in crate_paths(&code) {
            let to = if LOG_MACROS.contains(&name.as_str()) {
                "log".to_string()
            } else if modules.contains(&name) {
                name
            } else {
                // Any other item at the crate root is lib.rs's.
                "lib".to_string()
            };
            if to != from {
                edges.push(Edge {
                    from: from.clone(),
                    to,
                    path: source.path.clone(),
                    line,
                });
            }
        }
    }
    edges
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Blanks a range of `text` with spaces, keeping its newlines (so lines keep their numbers).
fn blank(text: &mut [char], from: usize, to: usize) {
    let to = to.min(text.len());
    for c in &mut text[from..to] {
        if *c != '\n' {
            *c = ' ';
        }
    }
}

/// `text` with every comment (doc comments too), string literal and char literal blanked.
fn blank_comments_and_strings(text: &str) -> Vec<char> {
    let src: Vec<char> = text.chars().collect();
    let mut out = src.clone();
    let at = |i: usize| src.get(i).copied().unwrap_or('\0');
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c == '/' && at(i + 1) == '/' {
            let end = (i..src.len())
                .find(|&j| src[j] == '\n')
                .unwrap_or(src.len());
            blank(&mut out, i, end);
            i = end;
        } else if c == '/' && at(i + 1) == '*' {
            let (mut depth, mut j) = (1, i + 2);
            while j < src.len() && depth > 0 {
                if src[j] == '/' && at(j + 1) == '*' {
                    depth += 1;
                    j += 2;
                } else if src[j] == '*' && at(j + 1) == '/' {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if c == '"' {
            let end = end_of_string(&src, i + 1);
            blank(&mut out, i, end);
            i = end;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}', '"'), or else a lifetime or a label.
            let end = if at(i + 1) == '\\' {
                (i + 3..src.len()).find(|&j| src[j] == '\'').map(|j| j + 1)
            } else if at(i + 2) == '\'' {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else if is_ident(c) {
            let start = i;
            while i < src.len() && is_ident(src[i]) {
                i += 1;
            }
            let word: String = src[start..i].iter().collect();
            let hashes = (i..src.len()).take_while(|&j| src[j] == '#').count();
            if matches!(word.as_str(), "r" | "br" | "cr") && at(i + hashes) == '"' {
                // r"...", r#"..."#: ends at the first quote followed by as many #.
                let mut j = i + hashes + 1;
                while j < src.len() && !(src[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#')) {
                    j += 1;
                }
                let end = (j + 1 + hashes).min(src.len());
                blank(&mut out, start, end);
                i = end;
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                let end = end_of_string(&src, i + 1);
                blank(&mut out, start, end);
                i = end;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The index just past the closing quote of a string whose text starts at `from`.
fn end_of_string(src: &[char], from: usize) -> usize {
    let mut j = from;
    while j < src.len() {
        match src[j] {
            '\\' => j += 2,
            '"' => return j + 1,
            _ => j += 1,
        }
    }
    src.len()
}

fn skip_space(code: &[char], mut i: usize) -> usize {
    while i < code.len() && code[i].is_whitespace() {
        i += 1;
    }
    i
}

/// If `code[i..]` starts with `word` (then a non-identifier), the index after it.
fn after_word(code: &[char], i: usize, word: &str) -> Option<usize> {
    let end = i + word.chars().count();
    let matches = end <= code.len()
        && code[i..end].iter().copied().eq(word.chars())
        && !code.get(end).copied().is_some_and(is_ident);
    matches.then_some(end)
}

/// If `code[i..]` starts with `#[cfg(test)]` (any spacing), the index after its `]`.
fn after_cfg_test(code: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    for token in ["#", "[", "cfg", "(", "test", ")", "]"] {
        j = skip_space(code, j);
        j = if token.chars().all(is_ident) {
            after_word(code, j, token)?
        } else if code.get(j) == token.chars().next().as_ref() {
            j + 1
        } else {
            return None;
        };
    }
    Some(j)
}

/// The index just past the bracket that closes the one at `open`.
fn after_matching(code: &[char], open: usize) -> usize {
    let (opening, closing) = match code[open] {
        '{' => ('{', '}'),
        '[' => ('[', ']'),
        _ => ('(', ')'),
    };
    let mut depth = 0;
    for (j, &c) in code.iter().enumerate().skip(open) {
        if c == opening {
            depth += 1;
        } else if c == closing {
            depth -= 1;
            if depth == 0 {
                return j + 1;
            }
        }
    }
    code.len()
}

/// `code` without the items under `#[cfg(test)]`: a `use` to its `;`, any other item to its
/// `;` or to the end of its braces (`#[cfg(test)] mod tests { ... }`).
fn blank_cfg_test(code: &[char]) -> Vec<char> {
    let mut out = code.to_vec();
    let mut i = 0;
    while i < code.len() {
        let Some(mut j) = (code[i] == '#').then(|| after_cfg_test(code, i)).flatten() else {
            i += 1;
            continue;
        };
        // Further attributes of the same item.
        loop {
            let k = skip_space(code, j);
            if code.get(k) == Some(&'#') && code.get(skip_space(code, k + 1)) == Some(&'[') {
                j = after_matching(code, skip_space(code, k + 1));
            } else {
                break;
            }
        }
        let mut k = skip_space(code, j);
        if let Some(after_pub) = after_word(code, k, "pub") {
            k = skip_space(code, after_pub);
            if code.get(k) == Some(&'(') {
                k = skip_space(code, after_matching(code, k));
            }
        }
        let is_use = after_word(code, k, "use").is_some();
        let mut end = code.len();
        for (m, &c) in code.iter().enumerate().skip(k) {
            if c == ';' {
                end = m + 1;
                break;
            }
            if c == '{' && !is_use {
                end = after_matching(code, m);
                break;
            }
        }
        blank(&mut out, i, end);
        i = end;
    }
    out
}

/// The line (from 1) of index `i`.
fn line_of(code: &[char], i: usize) -> usize {
    1 + code[..i].iter().filter(|&&c| c == '\n').count()
}

/// True when `crate` at `start` is the path of a `pub(in crate::...)` visibility.
fn in_visibility(code: &[char], start: usize) -> bool {
    let before: String = code[start.saturating_sub(64)..start].iter().collect();
    let before = before.trim_end();
    let Some(before) = before.strip_suffix("in") else {
        return false;
    };
    let before = before.trim_end();
    before
        .strip_suffix('(')
        .is_some_and(|b| b.trim_end().ends_with("pub"))
}

/// Each name that follows `crate::` (or `source_aws_billing::`, main.rs's way to the library),
/// with its line: `crate::a::b` and `use crate::a::{b, c}` give `a`, `use crate::{a, b::c}`
/// gives `a` and `b`. `$crate::` and visibilities (`pub(crate)`, `pub(in crate::a)`) are not
/// imports.
fn crate_paths(code: &[char]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !is_ident(code[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < code.len() && is_ident(code[i]) {
            i += 1;
        }
        let word: String = code[start..i].iter().collect();
        let is_root = word == "crate" || word == "source_aws_billing";
        if !is_root || (start > 0 && code[start - 1] == '$') || in_visibility(code, start) {
            continue;
        }
        let j = skip_space(code, i);
        if code.get(j) != Some(&':') || code.get(j + 1) != Some(&':') {
            continue;
        }
        names_at(code, skip_space(code, j + 2), &mut found);
    }
    found
}

/// The first name of the path at `i`, or of each path of the group `{...}` at `i`.
fn names_at(code: &[char], i: usize, found: &mut Vec<(usize, String)>) {
    match code.get(i) {
        Some('{') => {
            let end = after_matching(code, i) - 1;
            // The start of each entry: after the brace and after each comma at depth 1.
            let mut starts = vec![i + 1];
            let mut depth = 0;
            for (j, &c) in code.iter().enumerate().take(end).skip(i + 1) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => starts.push(j + 1),
                    _ => {}
                }
            }
            for start in starts {
                let start = skip_space(code, start);
                if start < end {
                    names_at(code, start, found);
                }
            }
        }
        Some(&c) if is_ident(c) => {
            let name: String = code[i..].iter().take_while(|&&c| is_ident(c)).collect();
            if name != "self" {
                found.push((line_of(code, i), name));
            }
        }
        _ => {}
    }
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn circles(edges: &[Edge]) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            let next: Vec<&str> = self.graph.get(v).into_iter().flatten().copied().collect();
            for w in next {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().expect("v is on the stack");
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for edge in edges {
        graph.entry(&edge.from).or_default().insert(&edge.to);
        graph.entry(&edge.to).or_default();
    }
    let nodes: Vec<&str> = graph.keys().copied().collect();
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in nodes {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// The first place each (from, to) pair is seen, and how many places in all.
fn links(edges: &[Edge]) -> BTreeMap<(&str, &str), (&Edge, usize)> {
    let mut links: BTreeMap<(&str, &str), (&Edge, usize)> = BTreeMap::new();
    for edge in edges {
        links
            .entry((&edge.from, &edge.to))
            .and_modify(|(_, n)| *n += 1)
            .or_insert((edge, 1));
    }
    links
}

/// Each circle's modules and one place per link inside it; empty when there is none.
fn circle_report(edges: &[Edge]) -> String {
    let circles = circles(edges);
    let links = links(edges);
    let mut report = String::new();
    for circle in &circles {
        let _ = writeln!(
            report,
            "import circle of {} modules: {}",
            circle.len(),
            circle.join(", ")
        );
        for ((from, to), (edge, _)) in &links {
            if circle.iter().any(|m| m == from) && circle.iter().any(|m| m == to) {
                let _ = writeln!(report, "  {from} -> {to}  {}:{}", edge.path, edge.line);
            }
        }
    }
    if !circles.is_empty() {
        report.push_str(
            "No circle can stand on floors (DESIGN.md, Floors): break each one by moving what \
             the lower module needs down to its floor.\n",
        );
    }
    report
}

/// Each module without a floor, and each import from a higher floor (its first place and
/// how many more); empty when every module keeps to its floor.
fn floor_report(sources: &[Source], edges: &[Edge]) -> String {
    let modules: BTreeSet<String> = sources.iter().map(|s| module_of(&s.path)).collect();
    let mut report = String::new();
    for module in modules.iter().filter(|m| floor_of(m).is_none()) {
        let _ = writeln!(
            report,
            "{}: module {module} has no floor; add it to the table in tests/it/layering.rs \
             and DESIGN.md's Floors",
            shown_module(sources, module)
        );
    }
    for ((from, to), (edge, count)) in links(edges) {
        let (Some(low), Some(high)) = (floor_of(from), floor_of(to)) else {
            continue;
        };
        if high > low {
            let more = match count {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            let _ = writeln!(
                report,
                "{}:{}: {from} (floor {low}) imports {to} (floor {high}){more}",
                edge.path, edge.line
            );
        }
    }
    report
}

/// The checker itself, on small made-up sources: it must fail when it should.
mod checker {
    use super::*;

    fn sources(files: &[(&str, &str)]) -> Vec<Source> {
        files
            .iter()
            .map(|(path, text)| Source {
                path: path.to_string(),
                text: text.to_string(),
            })
            .collect()
    }

    /// (from, to, line) of every edge.
    fn found(files: &[(&str, &str)]) -> Vec<(String, String, usize)> {
        edges(&sources(files))
            .into_iter()
            .map(|e| (e.from, e.to, e.line))
            .collect()
    }

    fn edge(from: &str, to: &str, line: usize) -> (String, String, usize) {
        (from.to_string(), to.to_string(), line)
    }

    /// Empty files for modules a, b, c and d, so their names are known modules.
    const MODULES: [(&str, &str); 4] = [
        ("src/a.rs", ""),
        ("src/b.rs", ""),
        ("src/c.rs", ""),
        ("src/d.rs", ""),
    ];

    fn with_modules(file: (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
        let mut files = MODULES.to_vec();
        files.push(file);
        files
    }

    #[test]
    fn a_grouped_use_imports_each_first_name() {
        let text = "use crate::{a, b::Thing};\nuse crate::{\n    c::{self, More},\n};\n";
        assert_eq!(
            found(&with_modules(("src/x.rs", text))),
            [edge("x", "a", 1), edge("x", "b", 1), edge("x", "c", 3)]
        );
    }

    #[test]
    fn nested_braces_after_a_module_import_that_module_once() {
        let text = "use crate::a::{b, c::{d}};\nuse crate::{b::{c, d::e}, d};\n";
        assert_eq!(
            found(&with_modules(("src/x.rs", text))),
            [edge("x", "a", 1), edge("x", "b", 2), edge("x", "d", 2)]
        );
    }

    #[test]
    fn inline_paths_count_too() {
        let text = "fn f() {\n    let v = crate::a::value();\n    crate :: b::go(v);\n}\n";
        assert_eq!(
            found(&with_modules(("src/x.rs", text))),
            [edge("x", "a", 2), edge("x", "b", 3)]
        );
    }

    #[test]
    fn comments_and_string_literals_are_not_imports() {
        let text = r####"// crate::a
/// crate::a in a doc comment
//! crate::a
/* crate::a /* nested crate::a */ still crate::a */
fn f<'s>(s: &'s str) -> char {
    let x = "crate::a \" crate::a";
    let y = r#"crate::a "quoted" crate::a"#;
    let z = b"crate::a";
    let q = '"';
    let e = '\'';
    crate::d::g(x, y, z, 'c');
    q
}
"####;
        assert_eq!(
            found(&with_modules(("src/x.rs", text))),
            [edge("x", "d", 11)]
        );
    }

    #[test]
    fn items_under_cfg_test_are_left_out() {
        let text = "use crate::a;
#[cfg(test)]
use crate::b;
#[cfg(test)]
mod tests {
    use crate::b::{x, y};
    fn f() { if true { crate::c::g(); } }
}
#[cfg( test )]
#[allow(dead_code)]
pub(crate) fn helper() { crate::c::h(); }
fn after() { crate::d::e(); }
";
        assert_eq!(
            found(&with_modules(("src/x.rs", text))),
            [edge("x", "a", 1), edge("x", "d", 12)]
        );
    }

    #[test]
    fn macros_visibilities_and_self_imports_are_told_apart() {
        let files = [
            (
                "src/log.rs",
                "macro_rules! warn { () => { $crate::log::write() } }",
            ),
            ("src/credentials/mod.rs", "pub(crate) fn f() {}"),
            (
                "src/credentials/sts.rs",
                "use crate::credentials::f;\n\
                 pub(in crate::credentials) fn g() {}\n\
                 crate::warn!(\"x\");\n\
                 use crate::{debug, info};\n\
                 use crate::Thing;\n",
            ),
        ];
        assert_eq!(
            found(&files),
            [
                edge("credentials", "log", 3),
                edge("credentials", "log", 4),
                edge("credentials", "log", 4),
                edge("credentials", "lib", 5),
            ]
        );
    }

    #[test]
    fn main_imports_through_the_library_name() {
        let files = [
            ("src/cli.rs", ""),
            ("src/log.rs", ""),
            (
                "src/main.rs",
                "use source_aws_billing::cli::{self, Action};\n\
                 use source_aws_billing::{error, log};\n\
                 fn main() { source_aws_billing::cli::run(); }\n",
            ),
        ];
        assert_eq!(
            found(&files),
            [
                edge("main", "cli", 1),
                edge("main", "log", 2),
                edge("main", "log", 2),
                edge("main", "cli", 3),
            ]
        );
    }

    #[test]
    fn a_circle_of_three_modules_is_named_with_a_place_per_link() {
        let files = sources(&[
            ("src/a.rs", "use crate::b::B;\n"),
            ("src/b.rs", "\nuse crate::c::C;\n"),
            ("src/c.rs", "\n\nfn f() { crate::a::g(); }\n"),
            ("src/d.rs", "use crate::a::A;\n"),
        ]);
        let report = circle_report(&edges(&files));
        assert!(
            report.starts_with("import circle of 3 modules: a, b, c\n"),
            "{report}"
        );
        for link in [
            "a -> b  src/a.rs:1",
            "b -> c  src/b.rs:2",
            "c -> a  src/c.rs:3",
        ] {
            assert!(report.contains(link), "{link} missing:\n{report}");
        }
        assert!(
            !report.contains("d ->"),
            "d is not in the circle:\n{report}"
        );
    }

    #[test]
    fn no_circle_no_report() {
        let files = sources(&[
            ("src/a.rs", "use crate::b::B;\n"),
            ("src/b.rs", "use crate::c::C;\n"),
            ("src/c.rs", ""),
        ]);
        assert_eq!(circle_report(&edges(&files)), "");
    }

    #[test]
    fn an_import_from_a_higher_floor_is_named_and_one_from_below_is_not() {
        let files = sources(&[
            (
                "src/event.rs",
                "use crate::config::Config;\nuse crate::log;\n",
            ),
            (
                "src/config.rs",
                "use crate::event::Event;\n\
                 fn f() { crate::service::run(); crate::service::stop(); }\n",
            ),
            ("src/service.rs", ""),
            ("src/log.rs", ""),
        ]);
        let report = floor_report(&files, &edges(&files));
        assert_eq!(
            report,
            "src/config.rs:2: config (floor 4) imports service (floor 5) (and 1 more)\n\
             src/event.rs:1: event (floor 2) imports config (floor 4)\n"
        );
    }

    #[test]
    fn a_module_without_a_floor_is_named() {
        let files = sources(&[
            ("src/log.rs", ""),
            ("src/gadget.rs", "use crate::log;\n"),
            ("src/widgets/mod.rs", ""),
        ]);
        assert_eq!(
            floor_report(&files, &edges(&files)),
            "src/gadget.rs: module gadget has no floor; add it to the table in \
             tests/it/layering.rs and DESIGN.md's Floors\n\
             src/widgets/: module widgets has no floor; add it to the table in \
             tests/it/layering.rs and DESIGN.md's Floors\n"
        );
    }
}
