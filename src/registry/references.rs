//! Schema references, as Confluent's clients follow them: each version lists the repository files
//! it refers to (JSON Schema `$ref`s to other files, Protobuf imports) as `{name, subject,
//! version}`. A file that is a version of a schema is that subject and version; any other file
//! (a shared `common/address.json`, an imported `money.proto`) is a subject of its own, named by
//! its path below the schema root, with one version. Support files are found from the versions'
//! references, and from theirs in turn.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::{ids, LoadProblem, Schema};
use crate::formats::{FileReference, FormatKind, RepoFiles};

/// One reference of a version or support file, in Confluent's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// The name the referring schema uses: the `$ref` without its fragment, the import path.
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// A repository file that versions refer to without being a version itself.
#[derive(Debug)]
pub struct SupportSubject {
    /// The file's path below the schema root: the subject's name.
    pub subject: String,
    /// The file's path in the repository.
    pub file: String,
    pub format: FormatKind,
    /// Its global id, as a version's (its one version is 1).
    pub id: u32,
    pub references: Vec<Reference>,
}

/// The Confluent references of `found`, the files a schema at some path refers to.
pub fn to_references(found: Vec<FileReference>, schema_root: &str) -> Vec<Reference> {
    found
        .into_iter()
        .map(|reference| {
            let (subject, version) = subject_of(&reference.file, schema_root);
            Reference {
                name: reference.name,
                subject,
                version,
            }
        })
        .collect()
}

/// The subject and version repository file `file` is: a schema's version when it sits in a
/// schema folder as `vN.<ext>`, else a support subject named by its path below the root.
fn subject_of(file: &str, schema_root: &str) -> (String, u32) {
    let below_root = file.strip_prefix(schema_root).unwrap_or(file);
    let version = below_root.split_once('/').and_then(|(folder, name)| {
        let (stem, ext) = name.split_once('.')?;
        let number = stem.strip_prefix('v')?.parse::<u32>().ok()?;
        (FormatKind::from_extension(ext).is_some() && !folder.contains('/'))
            .then(|| (folder.to_owned(), number))
    });
    version.unwrap_or_else(|| (below_root.to_owned(), 1))
}

/// The support subjects `schemas` reach through their references, each with its own references,
/// keyed by subject name. An id that collides with a version's is reported in `problems`.
pub fn support_subjects(
    files: &RepoFiles,
    schema_root: &str,
    schemas: &BTreeMap<String, Arc<Schema>>,
    problems: &mut Vec<LoadProblem>,
) -> BTreeMap<String, Arc<SupportSubject>> {
    let is_version = |reference: &Reference| schemas.contains_key(&reference.subject);
    let mut pending: VecDeque<String> = schemas
        .values()
        .flat_map(|schema| schema.versions())
        .flat_map(|version| version.references.iter())
        .filter(|reference| !is_version(reference))
        .map(|reference| reference.subject.clone())
        .collect();
    let mut found = BTreeMap::new();
    while let Some(subject) = pending.pop_front() {
        if found.contains_key(&subject) {
            continue;
        }
        let file = format!("{schema_root}{subject}");
        let (file, text) = match files.get(&file) {
            Some(bytes) => (file, bytes),
            None => match files.get(&subject) {
                Some(bytes) => (subject.clone(), bytes),
                None => continue,
            },
        };
        let format = file
            .rsplit_once('.')
            .and_then(|(_, ext)| FormatKind::from_extension(ext));
        let (Some(format), Ok(text)) = (format, std::str::from_utf8(text)) else {
            continue;
        };
        let references = to_references(
            format.references(&file, schema_root, text, files),
            schema_root,
        );
        pending.extend(
            references
                .iter()
                .filter(|reference| !is_version(reference))
                .map(|reference| reference.subject.clone()),
        );
        let id = ids::schema_id(&subject, 1);
        if let Some((schema, version)) = schemas
            .values()
            .find_map(|schema| schema.version_by_id(id).map(|version| (schema, version)))
        {
            problems.push(LoadProblem {
                file: file.clone(),
                version: None,
                rule: "schema_id",
                message: format!(
                    "{subject} (a file other schemas refer to) and {} v{} derive the same schema id {id}; rename one",
                    schema.name, version.version
                ),
            });
        }
        let support = SupportSubject {
            subject: subject.clone(),
            file,
            format,
            id,
            references,
        };
        found.insert(subject, Arc::new(support));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_file_is_its_schema_and_version_and_anything_else_a_subject_of_its_own() {
        assert_eq!(
            subject_of("schemas/orders/v2.json", "schemas/"),
            ("orders".into(), 2)
        );
        assert_eq!(subject_of("orders/v2.json", ""), ("orders".into(), 2));
        assert_eq!(
            subject_of("schemas/common/address.json", "schemas/"),
            ("common/address.json".into(), 1)
        );
        assert_eq!(
            subject_of("schemas/common/deep/v1.json", "schemas/"),
            ("common/deep/v1.json".into(), 1)
        );
    }
}
