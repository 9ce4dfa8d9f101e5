//! The reference docs held to the code, so they cannot drift: every key the configuration types
//! take is in `docs/configuration.md` with its real default, and nothing else is; the keys of
//! `[[auth.tokens]]`, of a station and of `schema.toml` are the ones their tables list.
//!
//! The keys a type takes are read from serde's own refusal of an unknown key ("expected one of
//! ..."), which lists every field, optional ones included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sluice::config::Config;

fn doc(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every table row of `text` whose first cell names keys: the backticked names of the first cell,
/// and the backticked values (or the bare word) of the second.
fn rows(text: &str) -> Vec<(Vec<String>, Vec<String>)> {
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            (backticked(cells[0]), backticked_or_word(cells[1]))
        })
        .collect()
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn backticked_or_word(cell: &str) -> Vec<String> {
    match backticked(cell).as_slice() {
        [] => vec![cell.trim().to_owned()],
        values => values.to_vec(),
    }
}

/// The fields serde expects where `text` puts an unknown key, from its error.
fn fields_refusing(text: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, text).unwrap();
    let error = Config::load(&path, true, std::iter::empty())
        .expect_err("an unknown key is refused")
        .to_string();
    fields_in(&error)
}

fn fields_in(error: &str) -> BTreeSet<String> {
    let expected = error
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("serde names the fields it expects: {error}"));
    backticked(expected.lines().next().unwrap())
        .into_iter()
        .collect()
}

/// The value at `section.key` of a configuration serialized as TOML.
fn value_at(config: &Config, key: &str) -> Option<toml::Value> {
    let (section, field) = key.split_once('.').unwrap();
    let whole = toml::Value::try_from(config).unwrap();
    whole.get(section)?.get(field).cloned()
}

fn load(text: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path, true, std::iter::empty()).map_err(|e| e.to_string())
}

#[test]
fn the_configuration_page_lists_every_key_with_its_real_default() {
    let page = doc("configuration.md");
    let mut documented: BTreeMap<String, String> = BTreeMap::new();
    for (keys, defaults) in rows(&page) {
        if !keys.iter().all(|key| key.contains('.')) {
            continue; // a table of entry keys, checked below
        }
        for (i, key) in keys.iter().enumerate() {
            let default = defaults.get(i).unwrap_or(&defaults[0]);
            documented.insert(key.clone(), default.clone());
        }
    }
    let sections = fields_refusing("zz_not_a_key = 1\n");
    let mut taken = BTreeSet::new();
    for section in &sections {
        if section == "station" {
            continue; // stations.toml's keys, in docs/schema-repository.md
        }
        for field in fields_refusing(&format!("[{section}]\nzz_not_a_key = 1\n")) {
            taken.insert(format!("{section}.{field}"));
        }
    }
    let on_page: BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(
        on_page.difference(&taken).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented in docs/configuration.md but not taken by the gateway"
    );
    assert_eq!(
        taken.difference(&on_page).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "taken by the gateway but missing from docs/configuration.md"
    );

    let defaults = Config::default();
    for (key, default) in &documented {
        let actual = value_at(&defaults, key);
        if default == "none" {
            assert_eq!(actual, None, "{key}: documented without a default");
            continue;
        }
        let (section, field) = key.split_once('.').unwrap();
        let written = load(&format!("[{section}]\n{field} = {default}\n"))
            .unwrap_or_else(|e| panic!("{key} = {default}, as documented, is refused: {e}"));
        assert_eq!(
            value_at(&written, key),
            actual,
            "{key}: the documented default {default} is not the default"
        );
    }
}

/// The keys of the table right after `heading` (a line of the page), and what serde takes there.
fn entry_table(page: &str, heading: &str) -> BTreeSet<String> {
    let after = page
        .split_once(heading)
        .unwrap_or_else(|| panic!("the page has `{heading}`"))
        .1;
    let table: String = after
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .map(|line| format!("{line}\n"))
        .collect();
    rows(&table)
        .into_iter()
        .flat_map(|(keys, _)| keys)
        .collect()
}

#[test]
fn the_entry_tables_list_the_keys_each_entry_takes() {
    let configuration = doc("configuration.md");
    assert_eq!(
        entry_table(&configuration, "Each `[[auth.tokens]]` entry"),
        fields_refusing("[[auth.tokens]]\nzz_not_a_key = 1\n"),
        "[[auth.tokens]] in docs/configuration.md"
    );
    let repository = doc("schema-repository.md");
    assert_eq!(
        entry_table(&repository, "## Stations (`stations.toml`"),
        fields_refusing("[[station]]\nname = \"s\"\nzz_not_a_key = 1\n"),
        "stations in docs/schema-repository.md"
    );
    let settings = toml::from_str::<sluice::formats::SchemaSettings>("zz_not_a_key = 1\n")
        .expect_err("an unknown key is refused")
        .to_string();
    assert_eq!(
        entry_table(&repository, "| `schema.toml` key |"),
        fields_in(&settings),
        "schema.toml in docs/schema-repository.md"
    );
}
