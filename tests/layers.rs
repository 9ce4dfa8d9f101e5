//! The library's layers, top down, and the check that every name a file of `src/` uses (in code or
//! in a doc link, followed through `use` and re-exports to the file that defines it) belongs to a
//! module of a lower layer than its own, or to its own module. A module may not name another
//! module of its own layer either: siblings stay independent. `docs/architecture.md` describes the
//! same order; `tests/circles.rs` checks that no files name each other in a circle.

mod common;

use std::path::Path;

use common::source::Source;

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

/// The breaches among `source`'s files of the library: each file naming an item that a file of a
/// higher layer, or of another module of its own layer, defines (followed through re-exports).
fn breaches(source: &Source) -> Vec<Breach> {
    let top = |file: &common::source::File| {
        let (root, module) = &file.module;
        (root == "lib").then(|| module.first().cloned()).flatten()
    };
    source
        .edges
        .iter()
        .filter_map(|edge| {
            let (from, to) = (&source.files[edge.from], &source.files[edge.to]);
            let (from_module, to_module) = (top(from)?, top(to)?);
            let (own, theirs) = (layer(&from_module)?, layer(&to_module)?);
            (from_module != to_module && theirs <= own).then(|| Breach {
                file: from.path.clone(),
                line: edge.line,
                from: from_module,
                to: to_module,
            })
        })
        .collect()
}

/// The library's top-level modules that no layer holds.
fn unplaced(source: &Source) -> Vec<String> {
    source
        .files
        .iter()
        .filter(|file| file.module.0 == "lib" && file.module.1.len() == 1)
        .map(|file| file.module.1[0].clone())
        .filter(|module| layer(module).is_none())
        .collect()
}

#[test]
fn every_import_points_down() {
    let source = Source::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(source.files.len() > 100, "the crate's files were not found");
    let unplaced = unplaced(&source);
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to LAYERS and to docs/architecture.md): {unplaced:?}"
    );
    let listed: Vec<String> = breaches(&source).iter().map(ToString::to_string).collect();
    assert!(
        listed.is_empty(),
        "imports that point up or sideways:\n{}",
        listed.join("\n")
    );
}

#[test]
fn an_inverted_import_is_named_with_its_file_and_line() {
    let lib = "pub mod backends;\npub mod formats;\npub mod model;\npub mod pipeline;\npub mod registry;\n";
    let source = Source::of(&[
        ("lib.rs", lib),
        ("backends/mod.rs", "//! The store.\nuse crate::model::Record;\nuse crate::{formats, registry::Station};\n/// See [`crate::backends::Backend`].\npub trait Backend {}\n"),
        ("formats/mod.rs", "pub mod json;\n"),
        ("formats/json.rs", "//! JSON.\n\nuse crate::pipeline::Limits;\n"),
        ("model.rs", "pub struct Record;\n"),
        ("pipeline/mod.rs", "mod limits;\npub use limits::Limits;\n"),
        ("pipeline/limits.rs", "pub struct Limits;\n"),
        ("registry.rs", "pub struct Station;\n"),
    ]);
    let breaches = breaches(&source);
    assert_eq!(
        breaches.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "src/backends/mod.rs:3: `backends` names `crate::registry`, a module of its own layer (registry/backends → registry/backends)",
            "src/formats/json.rs:3: `formats` names `crate::pipeline`, a module of a higher layer (formats → pipeline/alerts)",
        ],
        "formats is below backends and a module may name itself; registry is its sibling; a \
         re-export is followed to the file that defines the name"
    );
}
