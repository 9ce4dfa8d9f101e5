//! Builds a [`Snapshot`] from a repository's files: finds schema folders and their `vN.<ext>`
//! versions, compiles every version, and binds stations to schemas. Any problem refuses the whole
//! revision, and every problem is reported, not just the first.
//!
//! Layout: schema folders sit under `schemas/` when the repository has that folder, else at its
//! root. A folder is a schema when it holds at least one `vN.<ext>` file; its other files (and
//! folders without versions, such as `common/`) are support files that `$ref`s may use.
//! `stations.toml` sits at the repository root.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use super::stations::{check_station_name, Framing, StationConfig, StationsFile};
use super::{
    compat, compile, dlq_name, references, LoadProblem, Schema, SchemaVersion, Snapshot, Station,
};
use crate::formats::{FormatKind, RepoFiles, SchemaSettings};
use crate::metrics::StationMetrics;

/// Name of the station bindings file at the repository root.
pub const STATIONS_FILE: &str = "stations.toml";
/// Name of a schema folder's optional settings file.
pub const SCHEMA_SETTINGS_FILE: &str = "schema.toml";
/// How a version's rules file ends: `v2.rules.toml` holds the rules of `v2.<ext>`.
pub const RULES_SUFFIX: &str = ".rules.toml";

/// What a revision is judged against by the rules between revisions ([`compat::check`]).
#[derive(Clone, Copy)]
pub enum History<'a> {
    /// Nothing is known of earlier revisions: every version is judged against the ones before it.
    Unknown,
    /// The revision follows this one (the serving snapshot, or `sluice check --base`).
    Since(&'a Snapshot),
    /// The revision was served before and passed then; it is not judged again.
    AlreadyServed,
}

/// Builds the snapshot of `files` at `revision`, with `extra_stations` from the config file,
/// judged against `history`.
pub fn build(
    files: Arc<RepoFiles>,
    revision: String,
    extra_stations: &[StationConfig],
    history: History<'_>,
) -> Result<Snapshot, Vec<LoadProblem>> {
    let mut problems = Vec::new();
    let serving = match history {
        History::Since(serving) => Some(serving),
        History::Unknown | History::AlreadyServed => None,
    };
    // What did not change is kept once, with the serving snapshot's copy; and not compiled again.
    let files = match serving {
        Some(serving) => Arc::new(files.sharing_with(&serving.files)),
        None => files,
    };
    let previous = serving.map(|serving| compile::Previous::new(serving, &files));
    for why in crate::formats::json::check_refs_file(&files) {
        problems.push(problem(crate::formats::json::REFS_FILE, "refs", why));
    }
    let station_configs = read_stations(&files, extra_stations, &mut problems);
    let in_use: HashSet<&str> = station_configs
        .iter()
        .filter_map(|(_, config)| config.schema.as_deref())
        .collect();
    let (schemas, failed_schemas) = load_schemas(&files, previous.as_ref(), &in_use, &mut problems);
    let support =
        references::support_subjects(&files, schema_root(&files), &schemas, &mut problems);
    match history {
        History::Unknown => compat::check(&schemas, None, &mut problems),
        History::Since(baseline) => compat::check(&schemas, Some(baseline), &mut problems),
        History::AlreadyServed => {}
    }
    let stations = bind_stations(station_configs, &schemas, &failed_schemas, &mut problems);
    let schedules = super::schedules::read(&files, &stations, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Snapshot {
        revision,
        loaded_at: SystemTime::now(),
        files,
        schemas,
        stations,
        support,
        schedules,
    })
}

/// A `vN.<ext>` file found in a schema folder.
#[derive(Clone, Copy)]
struct VersionFile<'a> {
    version: u32,
    path: &'a str,
    format: FormatKind,
}

/// Where schema folders start: `"schemas/"` when the repository has that folder, else `""`.
pub fn schema_root(files: &RepoFiles) -> &'static str {
    if files.iter().any(|(path, _)| path.starts_with("schemas/")) {
        "schemas/"
    } else {
        ""
    }
}

/// The schemas that loaded, and the names of those that did not (their problems already reported).
fn load_schemas(
    files: &RepoFiles,
    previous: Option<&compile::Previous<'_>>,
    in_use: &HashSet<&str>,
    problems: &mut Vec<LoadProblem>,
) -> (BTreeMap<String, Arc<Schema>>, HashSet<String>) {
    let root = schema_root(files);
    let layout = Layout::read(files, root, problems);
    let mut failed = HashSet::new();
    let planned = layout.plan(files, root, problems, &mut failed);
    let jobs: Vec<compile::Job<'_>> = planned
        .iter()
        .flat_map(|plan| plan.jobs(root, in_use.contains(plan.name)))
        .collect();
    let mut compiled = compile::compile_all(&jobs, files, root, previous).into_iter();
    let mut schemas = BTreeMap::new();
    let mut taken_ids: HashMap<u32, String> = HashMap::new();
    for plan in planned {
        let name = plan.name;
        let mut versions = Vec::with_capacity(plan.version_files.len());
        for result in compiled.by_ref().take(plan.version_files.len()) {
            match result {
                Ok(version) => versions.push(version),
                Err(compile_problem) => {
                    problems.push(compile_problem);
                    failed.insert(name.to_owned());
                }
            }
        }
        if failed.contains(name) {
            continue;
        }
        claim_ids(name, &versions, &mut taken_ids, problems);
        let schema = Schema {
            name: name.to_owned(),
            format: plan.version_files[0].format,
            settings: plan.settings,
            versions,
        };
        schemas.insert(name.to_owned(), Arc::new(schema));
    }
    (schemas, failed)
}

/// Reports a version of schema `name` whose id another schema's version already took.
fn claim_ids(
    name: &str,
    versions: &[SchemaVersion],
    taken_ids: &mut HashMap<u32, String>,
    problems: &mut Vec<LoadProblem>,
) {
    for version in versions {
        let owner = format!("{name} v{}", version.version);
        if let Some(other) = taken_ids.insert(version.id, owner.clone()) {
            problems.push(problem(
                &version.file,
                "schema_id",
                format!(
                    "{owner} and {other} derive the same schema id {}; rename one schema",
                    version.id
                ),
            ));
        }
    }
}

/// The schema folders of a revision: each folder's version files, settings file and rules files.
#[derive(Default)]
struct Layout<'a> {
    folders: BTreeMap<&'a str, Vec<VersionFile<'a>>>,
    settings_files: HashMap<&'a str, &'a str>,
    rules_files: Vec<(&'a str, u32, &'a str)>,
}

/// One schema about to be compiled: its settings and the versions to compile.
struct Plan<'a> {
    name: &'a str,
    settings: SchemaSettings,
    settings_file: String,
    version_files: Vec<VersionFile<'a>>,
}

impl Plan<'_> {
    fn jobs<'p>(
        &'p self,
        root: &'p str,
        in_use: bool,
    ) -> impl Iterator<Item = compile::Job<'p>> + 'p {
        let rules_file = move |version| format!("{root}{}/v{version}{RULES_SUFFIX}", self.name);
        self.version_files.iter().map(move |file| compile::Job {
            schema: self.name,
            version: file.version,
            file: file.path,
            format: file.format,
            settings: &self.settings,
            settings_file: self.settings_file.clone(),
            rules_file: rules_file(file.version),
            in_use,
        })
    }
}

impl<'a> Layout<'a> {
    /// Sorts the files under `root` into schema folders, reporting files misnamed.
    fn read(files: &'a RepoFiles, root: &str, problems: &mut Vec<LoadProblem>) -> Self {
        let mut layout = Self::default();
        for (path, _) in files.iter() {
            let Some((folder, file)) = path
                .strip_prefix(root)
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            if !file.contains('/') {
                layout.add(folder, file, path, problems);
            }
        }
        for &(folder, version, path) in &layout.rules_files {
            let has_version = layout
                .folders
                .get(folder)
                .is_some_and(|files| files.iter().any(|f| f.version == version));
            if !has_version {
                problems.push(problem(
                    path,
                    "rule_compile",
                    format!("schema `{folder}` has no version {version} for these rules"),
                ));
            }
        }
        layout
    }

    /// Files `file` (at `path`) of schema folder `folder`.
    fn add(
        &mut self,
        folder: &'a str,
        file: &'a str,
        path: &'a str,
        problems: &mut Vec<LoadProblem>,
    ) {
        if file == SCHEMA_SETTINGS_FILE {
            self.settings_files.insert(folder, path);
        } else if let Some(stem) = file.strip_suffix(RULES_SUFFIX) {
            match parse_version_stem(stem) {
                Some(Ok(version)) => self.rules_files.push((folder, version, path)),
                Some(Err(message)) => problems.push(problem(path, "version_name", message)),
                None => problems.push(problem(
                    path,
                    "rule_compile",
                    format!("a rules file is named after its version: v1{RULES_SUFFIX}, v2{RULES_SUFFIX}…"),
                )),
            }
        } else {
            match parse_version_file_name(file) {
                None => {}
                Some(Err(message)) => problems.push(problem(path, "version_name", message)),
                Some(Ok((version, ext))) => match FormatKind::from_extension(ext) {
                    Some(format) => self.folders.entry(folder).or_default().push(VersionFile {
                        version,
                        path,
                        format,
                    }),
                    None => problems.push(problem(
                        path,
                        "unknown_format",
                        format!(
                            "`.{ext}` is not a schema format Sluice knows (use {})",
                            FormatKind::known_extensions()
                        ),
                    )),
                },
            }
        }
    }

    /// Each schema's settings and versions in sequence; a schema whose settings do not read, or
    /// whose versions are out of sequence, is reported and put in `failed`.
    fn plan(
        self,
        files: &RepoFiles,
        root: &str,
        problems: &mut Vec<LoadProblem>,
        failed: &mut HashSet<String>,
    ) -> Vec<Plan<'a>> {
        let mut planned = Vec::new();
        for (name, mut version_files) in self.folders {
            version_files.sort_by_key(|v| v.version);
            let settings = match self.settings_files.get(name) {
                Some(path) => match read_toml::<SchemaSettings>(files, path) {
                    Ok(settings) => settings,
                    Err(message) => {
                        problems.push(problem(path, "schema_settings", message));
                        failed.insert(name.to_owned());
                        continue;
                    }
                },
                None => SchemaSettings::default(),
            };
            let problems_before = problems.len();
            let version_files = in_sequence(name, &version_files, problems);
            if problems.len() > problems_before {
                failed.insert(name.to_owned());
            }
            planned.push(Plan {
                name,
                settings,
                settings_file: format!("{root}{name}/{SCHEMA_SETTINGS_FILE}"),
                version_files,
            });
        }
        planned
    }
}

/// The versions of schema `name` to compile: numbered 1, 2, 3… without gaps (those after a gap are
/// left out) and all of one format (others are left out); each problem is reported.
fn in_sequence<'a>(
    name: &str,
    version_files: &[VersionFile<'a>],
    problems: &mut Vec<LoadProblem>,
) -> Vec<VersionFile<'a>> {
    let format = version_files[0].format;
    let mut kept = Vec::with_capacity(version_files.len());
    for (expected, file) in (1u32..).zip(version_files) {
        if file.version != expected {
            problems.push(problem(
                file.path,
                "version_sequence",
                format!(
                    "schema `{name}` jumps to version {} where version {expected} was expected: versions are numbered 1, 2, 3… without gaps",
                    file.version
                ),
            ));
            break;
        }
        if file.format != format {
            problems.push(problem(
                file.path,
                "mixed_formats",
                format!("all versions of schema `{name}` must use one format"),
            ));
            continue;
        }
        kept.push(*file);
    }
    kept
}

/// `v12.json` → `Some(Ok((12, "json")))`; files not shaped like a version → `None`.
fn parse_version_file_name(file: &str) -> Option<Result<(u32, &str), String>> {
    let (stem, ext) = file.split_once('.')?;
    Some(parse_version_stem(stem)?.map(|version| (version, ext)))
}

/// `v12` → `Some(Ok(12))`; a stem not shaped like a version → `None`.
fn parse_version_stem(stem: &str) -> Option<Result<u32, String>> {
    let digits = stem.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match digits.parse::<u32>() {
        Ok(0) => Err("versions start at v1".to_owned()),
        Ok(_) if digits.starts_with('0') => Err(format!(
            "write the version without leading zeros (v{})",
            digits.trim_start_matches('0')
        )),
        Ok(version) => Ok(version),
        Err(_) => Err("version number too large".to_owned()),
    })
}

/// The stations of `stations.toml` and of the config file, each with where it was declared.
fn read_stations(
    files: &RepoFiles,
    extra_stations: &[StationConfig],
    problems: &mut Vec<LoadProblem>,
) -> Vec<(&'static str, StationConfig)> {
    let mut configs: Vec<(&str, StationConfig)> = Vec::new();
    if files.get(STATIONS_FILE).is_some() {
        match read_toml::<StationsFile>(files, STATIONS_FILE) {
            Ok(file) => configs.extend(file.station.into_iter().map(|s| (STATIONS_FILE, s))),
            Err(message) => problems.push(problem(STATIONS_FILE, "stations", message)),
        }
    }
    configs.extend(extra_stations.iter().map(|s| ("config", s.clone())));
    configs
}

fn bind_stations(
    configs: Vec<(&'static str, StationConfig)>,
    schemas: &BTreeMap<String, Arc<Schema>>,
    failed_schemas: &HashSet<String>,
    problems: &mut Vec<LoadProblem>,
) -> BTreeMap<String, Arc<Station>> {
    let mut stations = BTreeMap::new();
    for (origin, config) in configs {
        let name = config.name.clone();
        let bound = if stations.contains_key(&name) {
            Err(Some("declared twice".to_owned()))
        } else {
            bind_station(config, schemas, failed_schemas)
        };
        match bound {
            Ok(station) => {
                stations.insert(name, Arc::new(station));
            }
            Err(Some(message)) => problems.push(problem(
                origin,
                "station",
                format!("station `{name}`: {message}"),
            )),
            // Its schema failed to load, which was reported already.
            Err(None) => {}
        }
    }
    stations
}

/// Binds one station to its schema and checks its settings against it. `Err(None)`: its schema
/// did not load (a problem already reported).
fn bind_station(
    config: StationConfig,
    schemas: &BTreeMap<String, Arc<Schema>>,
    failed_schemas: &HashSet<String>,
) -> Result<Station, Option<String>> {
    check_station_name(&config.name)?;
    let schema = match &config.schema {
        None => None,
        Some(name) if failed_schemas.contains(name) => return Err(None),
        Some(name) => Some(
            schemas
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no schema named `{name}`"))?,
        ),
    };
    let accepted = match &schema {
        None => (0, 0),
        Some(schema) => config.accept.range(schema.newest()).ok_or_else(|| {
            format!(
                "accept = \"{}\" matches no version of schema `{}` (it has versions 1 to {})",
                config.accept,
                schema.name,
                schema.newest()
            )
        })?,
    };
    if let Some(alert) = &config.alert {
        if !(alert.rejection_rate > 0.0 && alert.rejection_rate <= 1.0) {
            return Err(Some(format!(
                "alert.rejection_rate is {}, but must be a fraction above 0 and at most 1",
                alert.rejection_rate
            )));
        }
    }
    if config.framing == Framing::Confluent {
        let framable = schema
            .as_ref()
            .is_some_and(|s| s.format.frames_as_confluent());
        if !framable {
            return Err(Some(
                "framing = \"confluent\" needs a JSON Schema, Avro or Protobuf schema".into(),
            ));
        }
    }
    Ok(Station {
        framing: config.framing,
        dlq_name: dlq_name(&config.name),
        metrics: StationMetrics::new(&config.name),
        name: config.name,
        schema,
        accept: config.accept,
        backend: config.backend,
        dlq: config.dlq,
        retention: config.retention,
        ack_timeout: config.ack_timeout,
        max_deliveries: config.max_deliveries,
        normalize: config.normalize,
        accepted,
        alert: config.alert,
    })
}

fn read_toml<T: serde::de::DeserializeOwned>(files: &RepoFiles, path: &str) -> Result<T, String> {
    let bytes = files.get(path).ok_or_else(|| "missing".to_owned())?;
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8 text".to_owned())?;
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// The snapshot of `files` (path and text), judged as a first revision: for tests of the layers
/// that use snapshots.
#[cfg(test)]
pub(crate) fn snapshot_of(files: &[(&str, &str)]) -> Snapshot {
    let files = RepoFiles::of(files);
    let revision = files.fingerprint();
    build(Arc::new(files), revision, &[], History::Unknown)
        .unwrap_or_else(|problems| panic!("the test repository does not load: {problems:?}"))
}

fn problem(file: &str, rule: &'static str, message: impl Into<String>) -> LoadProblem {
    LoadProblem {
        file: file.to_owned(),
        version: None,
        rule,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::stations::Accept;
    use crate::registry::VersionRefusal;

    fn repo(files: &[(&str, &str)]) -> RepoFiles {
        RepoFiles::of(files)
    }

    fn build_all(files: RepoFiles) -> Result<Snapshot, Vec<LoadProblem>> {
        load_with(files, &[])
    }

    fn load_with(files: RepoFiles, extra: &[StationConfig]) -> Result<Snapshot, Vec<LoadProblem>> {
        let revision = files.fingerprint();
        build(Arc::new(files), revision, extra, History::Unknown)
    }

    const OBJECT: &str = r#"{"type":"object"}"#;

    #[test]
    fn schemas_and_stations_load_from_either_layout() {
        for prefix in ["", "schemas/"] {
            let files = repo(&[
                (&format!("{prefix}orders/v1.json"), OBJECT),
                (&format!("{prefix}orders/v2.json"), OBJECT),
                (&format!("{prefix}common/address.json"), OBJECT),
                (
                    "stations.toml",
                    "[[station]]\nname = \"orders\"\nschema = \"orders\"\naccept = \">=1\"\n",
                ),
            ]);
            let snapshot = build_all(files).unwrap();
            let schema = snapshot.schema("orders").unwrap();
            assert_eq!(schema.newest(), 2);
            assert!(snapshot.schema("common").is_none());
            let station = snapshot.station("orders").unwrap();
            assert_eq!(station.pick_version(None).unwrap().unwrap().version, 2);
            assert_eq!(station.pick_version(Some(1)).unwrap().unwrap().version, 1);
            assert_eq!(
                station.pick_version(Some(3)).unwrap_err(),
                VersionRefusal::Unknown { newest: 2 }
            );
        }
    }

    #[test]
    fn accept_latest_refuses_older_versions() {
        let files = repo(&[
            ("orders/v1.json", OBJECT),
            ("orders/v2.json", OBJECT),
            (
                "stations.toml",
                "[[station]]\nname = \"orders\"\nschema = \"orders\"\n",
            ),
        ]);
        let snapshot = build_all(files).unwrap();
        let station = snapshot.station("orders").unwrap();
        assert_eq!(
            station.pick_version(Some(1)).unwrap_err(),
            VersionRefusal::NotAccepted {
                accept: Accept::Latest
            }
        );
    }

    #[test]
    fn every_problem_is_reported_with_file_and_rule() {
        let files = repo(&[
            ("a/v1.json", "{not json"),
            ("b/v1.json", OBJECT),
            ("b/v3.json", OBJECT),
            ("c/v1.yaml", "x"),
            ("d/v01.json", OBJECT),
            (
                "stations.toml",
                "[[station]]\nname = \"s\"\nschema = \"nope\"\n[[station]]\nname = \"t\"\nschema = \"b\"\naccept = 7\n",
            ),
        ]);
        let problems = build_all(files).unwrap_err();
        let rules: Vec<_> = problems.iter().map(|p| (p.file.as_str(), p.rule)).collect();
        assert!(rules.contains(&("a/v1.json", "compile")), "{rules:?}");
        assert!(
            rules.contains(&("b/v3.json", "version_sequence")),
            "{rules:?}"
        );
        assert!(
            rules.contains(&("c/v1.yaml", "unknown_format")),
            "{rules:?}"
        );
        assert!(rules.contains(&("d/v01.json", "version_name")), "{rules:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.rule == "station" && p.message.contains("no schema named `nope`")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_missing_schema_is_reported_even_when_a_similarly_named_one_failed() {
        let files = repo(&[
            ("banana/v1.json", "{broken"),
            ("stations.toml", "[[station]]\nname = \"s\"\nschema = \"a\"\n[[station]]\nname = \"t\"\nschema = \"banana\"\n"),
        ]);
        let problems = build_all(files).unwrap_err();
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert!(
            messages.contains(&"station `s`: no schema named `a`"),
            "{messages:?}"
        );
        assert!(
            !messages
                .iter()
                .any(|m| m.contains("no schema named `banana`")),
            "the broken schema is reported once, as a compile problem: {messages:?}"
        );
    }

    #[test]
    fn stations_without_schema_are_pass_through() {
        let files = repo(&[("stations.toml", "[[station]]\nname = \"raw\"\n")]);
        let snapshot = build_all(files).unwrap();
        let station = snapshot.station("raw").unwrap();
        assert!(station.schema.is_none());
        assert!(station.pick_version(Some(9)).unwrap().is_none());
    }

    #[test]
    fn a_station_declared_twice_is_refused() {
        let files = repo(&[("stations.toml", "[[station]]\nname = \"raw\"\n")]);
        let extra: StationsFile = toml::from_str("[[station]]\nname = \"raw\"\n").unwrap();
        let problems = load_with(files, &extra.station).unwrap_err();
        assert!(problems[0].message.contains("declared twice"));
    }

    #[test]
    fn a_remote_ref_resolves_to_the_copy_refs_toml_maps_it_to() {
        const URL: &str = "https://geojson.org/schema/Point.json";
        let geo = format!(
            r#"{{"type":"object","properties":{{"at":{{"$ref":"{URL}#/properties/coordinates"}}}}}}"#
        );
        let point =
            r#"{"type":"object","properties":{"coordinates":{"type":"array","minItems":2}}}"#;
        let problems = build_all(repo(&[("schemas/geo/v1.json", &geo)])).unwrap_err();
        let message = &problems[0].message;
        assert!(
            message.contains(&format!(
                r#"refs.toml: "{URL}" = "vendor/geojson.org/schema/Point.json""#
            )),
            "{message}"
        );
        let refs = format!("\"{URL}\" = \"vendor/geojson.org/schema/Point.json\"\n");
        let snapshot = build_all(repo(&[
            ("schemas/geo/v1.json", &geo),
            ("vendor/geojson.org/schema/Point.json", point),
            ("refs.toml", &refs),
        ]))
        .unwrap();
        let compiled = snapshot
            .schema("geo")
            .unwrap()
            .version(1)
            .unwrap()
            .compiled
            .clone();
        let judge = |m| crate::formats::judge_json(compiled.as_ref(), &m).is_ok();
        assert!(judge(serde_json::json!({"at": [1, 2]})));
        assert!(!judge(serde_json::json!({"at": [1]})));
        let problems =
            build_all(repo(&[("schemas/geo/v1.json", &geo), ("refs.toml", &refs)])).unwrap_err();
        assert!(
            problems.iter().any(|p| p.file == "refs.toml"
                && p.rule == "refs"
                && p.message.contains("does not hold")),
            "{problems:?}"
        );
    }

    const RULES: &str = "[[rule]]\nname = \"positive\"\nexpr = \"message.total > 0\"\n";

    #[test]
    fn a_version_has_the_rules_of_its_rules_file() {
        let snapshot = build_all(repo(&[
            ("schemas/orders/v1.json", OBJECT),
            ("schemas/orders/v2.json", OBJECT),
            ("schemas/orders/v2.rules.toml", RULES),
        ]))
        .unwrap();
        let orders = snapshot.schema("orders").unwrap();
        assert!(orders.version(1).unwrap().rules.is_none());
        let rules = orders.version(2).unwrap().rules.as_ref().unwrap();
        assert_eq!(rules.file, "schemas/orders/v2.rules.toml");
        assert_eq!(rules.set.rules()[0].name, "positive");
        assert!(orders.version(2).unwrap().inputs.contains(&rules.file));
    }

    #[test]
    fn rules_that_cannot_be_refuse_the_revision_naming_file_and_rule() {
        let problems = build_all(repo(&[
            ("schemas/a/v1.json", OBJECT),
            (
                "schemas/a/v1.rules.toml",
                "[[rule]]\nname = \"bad\"\nexpr = \"message.x +\"\n",
            ),
            ("schemas/b/v1.json", OBJECT),
            ("schemas/b/v2.rules.toml", RULES),
            ("schemas/c/v1.graphql", "type Query { a: Int }"),
            ("schemas/c/v1.rules.toml", RULES),
        ]))
        .unwrap_err();
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.file.as_str(), p.rule, p.message.as_str()))
            .collect();
        assert!(
            found
                .iter()
                .any(|(file, rule, message)| *file == "schemas/a/v1.rules.toml"
                    && *rule == "rule_compile"
                    && message.contains("rule `bad` does not compile")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(file, rule, message)| *file == "schemas/b/v2.rules.toml"
                    && *rule == "rule_compile"
                    && message.contains("no version 2")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(file, _, message)| *file == "schemas/c/v1.rules.toml"
                    && message.contains("GraphQL document schemas have no rules")),
            "{found:?}"
        );
    }

    #[test]
    fn a_published_version_cannot_gain_or_change_rules_but_a_new_one_can_have_them() {
        let before = repo(&[("schemas/orders/v1.json", OBJECT)]);
        let serving = build_all(before).unwrap();
        let judge = |files: &[(&str, &str)]| {
            let files = repo(files);
            let revision = files.fingerprint();
            build(Arc::new(files), revision, &[], History::Since(&serving))
        };
        let problems = judge(&[
            ("schemas/orders/v1.json", OBJECT),
            ("schemas/orders/v1.rules.toml", RULES),
        ])
        .unwrap_err();
        assert_eq!(problems[0].rule, "published_version_edited", "{problems:?}");
        assert!(
            problems[0].message.contains("nor can its rules"),
            "{problems:?}"
        );
        let next = judge(&[
            ("schemas/orders/v1.json", OBJECT),
            ("schemas/orders/v2.json", OBJECT),
            ("schemas/orders/v2.rules.toml", RULES),
        ])
        .unwrap();
        assert!(next
            .schema("orders")
            .unwrap()
            .version(2)
            .unwrap()
            .rules
            .is_some());
    }
}
