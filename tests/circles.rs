//! No circle of files: no file names an item of another that, through any chain of files, names an
//! item of the first (naming a module that contains the file aside), and every file of `src/` is
//! reached by a `mod` declaration. Edges are read by `common::source` (through `use` and re-exports, test code
//! left out); a circle fails this test naming its files and the names that tie them. Together with
//! `tests/layers.rs` it keeps every arrow of the house pointing one way.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::source::{Edge, Source};

/// The circles of `source`: each a set of files (indices), every one reachable from every other.
fn circles(source: &Source) -> Vec<Vec<usize>> {
    let n = source.files.len();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for edge in &source.edges {
        next[edge.from].push(edge.to);
    }
    let reach = |from: usize| {
        let mut seen = vec![false; n];
        let mut stack = vec![from];
        while let Some(at) = stack.pop() {
            for &to in &next[at] {
                if !seen[to] {
                    seen[to] = true;
                    stack.push(to);
                }
            }
        }
        seen
    };
    let reaches: Vec<Vec<bool>> = (0..n).map(reach).collect();
    let mut placed = vec![false; n];
    let mut found = Vec::new();
    for a in 0..n {
        if placed[a] || !reaches[a][a] {
            continue;
        }
        let circle: Vec<usize> = (0..n).filter(|&b| reaches[a][b] && reaches[b][a]).collect();
        for &b in &circle {
            placed[b] = true;
        }
        found.push(circle);
    }
    found
}

/// The shortest loop through the first file of `circle`, in words: one `file:line -> file
/// (name)` per edge, in order.
fn describe(source: &Source, circle: &[usize]) -> String {
    let start = circle[0];
    let mut came_from: BTreeMap<usize, &Edge> = BTreeMap::new();
    let mut frontier = vec![start];
    'search: while !frontier.is_empty() {
        let mut next = Vec::new();
        for at in frontier {
            for edge in source
                .edges
                .iter()
                .filter(|e| e.from == at && circle.contains(&e.to))
            {
                if came_from.contains_key(&edge.to) {
                    continue;
                }
                came_from.insert(edge.to, edge);
                if edge.to == start {
                    break 'search;
                }
                next.push(edge.to);
            }
        }
        frontier = next;
    }
    let mut loop_edges = Vec::new();
    let mut at = start;
    while let Some(edge) = came_from.get(&at) {
        loop_edges.push(*edge);
        at = edge.from;
        if at == start {
            break;
        }
    }
    loop_edges.reverse();
    let file = |i: usize| source.files[i].path.as_str();
    loop_edges
        .iter()
        .map(|e| {
            format!(
                "  {}:{} -> {} (`{}`)",
                file(e.from),
                e.line,
                file(e.to),
                e.name
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn failures(source: &Source) -> Vec<String> {
    circles(source)
        .iter()
        .map(|circle| {
            let files: Vec<&str> = circle
                .iter()
                .map(|&i| source.files[i].path.as_str())
                .collect();
            format!(
                "circle of {}:\n{}",
                files.join(", "),
                describe(source, circle)
            )
        })
        .collect()
}

#[test]
fn no_files_name_each_other_in_a_circle() {
    let source = Source::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(source.files.len() > 100, "the crate's files were not found");
    let unread: Vec<&String> = source
        .unread
        .iter()
        .filter(|path| !path.ends_with("/tests.rs"))
        .collect();
    assert!(
        unread.is_empty(),
        "files no `mod` declaration reaches (a module is declared where its folder is, without `#[path]`): {unread:?}"
    );
    let failures = failures(&source);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_circle_is_named_with_its_files_and_names() {
    let source = Source::of(&[
        ("lib.rs", "pub mod a;\npub mod model;\n"),
        (
            "a/mod.rs",
            "pub mod b;\npub mod c;\npub use c::Limit;\npub struct Station;\n",
        ),
        (
            "a/b.rs",
            "//! B.\nuse super::Station;\npub fn station() -> Station { Station }\n",
        ),
        (
            "a/c.rs",
            "use crate::a::b;\npub const Limit: u32 = 1;\nfn f() { b::station(); }\n",
        ),
        ("model.rs", "use crate::a::Limit;\n"),
    ]);
    assert!(failures(&source).is_empty(), "{:?}", failures(&source));

    let with_cycle = Source::of(&[
        ("a/mod.rs", "pub mod b;\npub mod c;\npub use c::Limit;\npub struct Station;\n"),
        ("a/b.rs", "//! B.\nuse super::Station;\npub fn station() -> Station { Station }\n/// Bounded by [`crate::Limit`].\npub fn bound() {}\n"),
        ("a/c.rs", "use crate::a::b;\npub const Limit: u32 = 1;\nfn f() { b::station(); }\n"),
        ("model.rs", "use crate::a::Limit;\n"),
        ("lib.rs", "pub mod a;\npub mod model;\npub use a::Limit;\n"),
    ]);
    let failures = failures(&with_cycle);
    assert_eq!(
        failures,
        ["circle of src/a/b.rs, src/a/c.rs:\n  src/a/b.rs:4 -> src/a/c.rs (`Limit`)\n  src/a/c.rs:1 -> src/a/b.rs (`a::b`)"],
        "a name re-exported at the crate root is followed to the file that defines it"
    );
}

#[test]
fn test_code_ties_nothing() {
    let source = Source::of(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a.rs",
            "pub fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::b::g;\n}\n",
        ),
        ("b.rs", "pub fn g() { crate::a::f() }\n"),
    ]);
    assert!(failures(&source).is_empty());
}

#[test]
fn uses_inside_functions_count_and_paths_into_other_crates_do_not() {
    let source = Source::of(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a/mod.rs",
            "mod sync;\npub fn f() -> usize {\n    let shared = std::sync::Arc::new(1);\n    crate::b::g() + *shared\n}\n",
        ),
        ("a/sync.rs", "pub fn h() {}\n"),
        ("b.rs", "pub fn g() -> usize {\n    use crate::a::f;\n    f()\n}\n"),
    ]);
    let named = |from: &str, to: &str| {
        source
            .edges
            .iter()
            .any(|e| source.files[e.from].path == from && source.files[e.to].path == to)
    };
    assert!(
        !named("src/a/mod.rs", "src/a/sync.rs"),
        "std::sync is not the child `sync`"
    );
    assert_eq!(
        failures(&source),
        ["circle of src/a/mod.rs, src/b.rs:\n  src/a/mod.rs:4 -> src/b.rs (`b::g`)\n  src/b.rs:2 -> src/a/mod.rs (`a::f`)"]
    );
}
