//! The library's layers, top down, and the check that every `crate::` path in `src/` (in code or in
//! a doc link) names a module of a lower layer than its own, or its own module. A module may not
//! name another module of its own layer either: siblings stay independent. `docs/architecture.md`
//! describes the same order.

use std::path::{Path, PathBuf};

/// Each layer's top-level modules, highest first.
const LAYERS: &[&[&str]] = &[
    &["server"],
    &["config", "client"],
    &["ingress"],
    &["pipeline", "alerts"],
    &["registry", "backends"],
    &["metrics"],
    &["formats"],
    &["model", "logs", "ui", "crypto"],
];

/// The layer of a top-level module, 0 being the highest.
fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// One reference to another module that breaks the order.
#[derive(Debug, PartialEq, Eq)]
struct Breach {
    file: String,
    line: usize,
    from: String,
    to: String,
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (from, to) = (layer(&self.from).unwrap(), layer(&self.to).unwrap());
        let how = if from == to {
            "a module of its own layer"
        } else {
            "a module of a higher layer"
        };
        write!(
            f,
            "{}:{}: `{}` names `crate::{}`, {how} ({} → {})",
            self.file,
            self.line,
            self.from,
            self.to,
            LAYERS[from].join("/"),
            LAYERS[to].join("/")
        )
    }
}

/// The top-level modules `text` names through `crate::`, with the line of each.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut named = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(at) = rest.find("crate::") {
        let start = consumed + at + "crate::".len();
        let line = text[..start].matches('\n').count() + 1;
        let after = &text[start..];
        if let Some(group) = after.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                if let Some(module) = first_ident(item) {
                    named.push((line, module));
                }
            }
        } else if let Some(module) = first_ident(after) {
            named.push((line, module));
        }
        consumed = start;
        rest = &text[start..];
    }
    named
}

/// The index of the `}` closing a group whose `{` came just before `text`.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The items of a `{a, b::{c, d}, e}` group, split at its own commas.
fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

fn first_ident(text: &str) -> Option<String> {
    let ident: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty()).then_some(ident)
}

/// The breaches in one file of module `from`.
fn breaches_in(file: &str, from: &str, text: &str) -> Vec<Breach> {
    let Some(own) = layer(from) else {
        return Vec::new();
    };
    named_modules(text)
        .into_iter()
        .filter(|(_, to)| to != from && layer(to).is_some_and(|theirs| theirs <= own))
        .map(|(line, to)| Breach {
            file: file.to_owned(),
            line,
            from: from.to_owned(),
            to,
        })
        .collect()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to; `None` for the crate root and the binary.
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(module, "lib" | "main" | "cli")).then(|| module.to_owned())
}

#[test]
fn every_import_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut breaches = Vec::new();
    let mut unplaced = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&src).unwrap();
        let Some(module) = module_of(relative) else {
            continue;
        };
        if layer(&module).is_none() {
            unplaced.push(module);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = format!("src/{}", relative.display());
        breaches.extend(breaches_in(&file, &module, &text));
    }
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to LAYERS and to docs/architecture.md): {unplaced:?}"
    );
    let listed: Vec<String> = breaches.iter().map(ToString::to_string).collect();
    assert!(
        listed.is_empty(),
        "imports that point up or sideways:\n{}",
        listed.join("\n")
    );
}

#[test]
fn an_inverted_import_is_named_with_its_file_and_line() {
    let text = "//! The store.\nuse crate::model::Record;\nuse crate::{formats, registry::Station};\n/// See [`crate::backends::Backend`].\n";
    let breaches = breaches_in("src/backends/x.rs", "backends", text);
    assert_eq!(
        breaches,
        [Breach {
            file: "src/backends/x.rs".into(),
            line: 3,
            from: "backends".into(),
            to: "registry".into(),
        }],
        "formats is below backends and a module may name itself; registry is its sibling"
    );
    let breaches = breaches_in(
        "src/formats/json.rs",
        "formats",
        "use crate::pipeline::Limits;",
    );
    assert_eq!(breaches.len(), 1);
    assert_eq!(
        breaches[0].to_string(),
        "src/formats/json.rs:1: `formats` names `crate::pipeline`, a module of a higher layer (formats → pipeline/alerts)"
    );
}
