//! JSON Schema compatibility, by Confluent's content-model rules: a version can read another's data
//! when every document the writing version accepts is also accepted by the reading version.
//!
//! Backward compatibility asks whether the new version accepts all the old one did; forward,
//! whether the old version accepts all the new one does. The comparison walks both schemas
//! together: types, enums and `const`, `required`, properties under open and closed content models
//! (`additionalProperties`), array items, numeric, length and count bounds, `pattern` and
//! `format`, and `anyOf`/`oneOf` alternatives (each writing alternative must be accepted by a
//! reading one). `allOf` parts are merged into their parent, `$ref`s are followed inside the
//! repository, and any other keyword that the reading version adds or changes (`not`, `if`,
//! `dependentSchemas`…) is reported as a change, since Sluice cannot prove it harmless.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{ref_targets, JsonDocuments, JsonSchema};
use crate::formats::{Breaks, Evolution, Incompatibility};

/// How deep the walk follows nested schemas and `$ref`s before giving up on a branch.
const MAX_DEPTH: usize = 64;
/// Most pairs of schemas one comparison looks at. Alternatives nested in alternatives multiply
/// the pairs at each level; past this many, compatibility is not shown (and the change is
/// refused), rather than the comparison running without bound.
const MAX_STEPS: usize = 200_000;

/// Keywords the comparison understands; any other assertion the reader adds or changes is reported.
const UNPROVEN_KEYWORDS: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "patternProperties",
    "propertyNames",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "prefixItems",
];

/// Lower bounds: the reader raising one (or adding one) refuses some writer data.
const LOWER_BOUNDS: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
/// Upper bounds: the reader lowering one (or adding one) refuses some writer data.
const UPPER_BOUNDS: &[&str] = &[
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];

/// What changed from `old` to `new` that breaks readers of either.
impl Evolution for JsonSchema {
    fn changes(old: &Self, new: &Self) -> Vec<Incompatibility> {
        let (old, new) = (DocumentSet::gather(old), DocumentSet::gather(new));
        let (Some(old_root), Some(new_root)) = (old.root(), new.root()) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let steps = Cell::new(0);
        for (breaks, (reader, reader_root), (writer, writer_root), reader_name, writer_name) in [
            (
                Breaks::Backward,
                (&new, new_root),
                (&old, old_root),
                "the new version",
                "the old version",
            ),
            (
                Breaks::Forward,
                (&old, old_root),
                (&new, new_root),
                "the old version",
                "the new version",
            ),
        ] {
            let mut walk = Walk {
                breaks,
                reader_name,
                writer_name,
                reader,
                writer,
                seen: HashSet::new(),
                found: Vec::new(),
                steps: &steps,
            };
            walk.compare(reader_root, writer_root, "", 0);
            found.append(&mut walk.found);
            if steps.get() > MAX_STEPS {
                found.push(Incompatibility::new(
                    breaks,
                    "too_complex_to_compare",
                    String::new(),
                    format!("comparing the versions takes more than {MAX_STEPS} steps (alternatives nested in alternatives), so compatibility cannot be shown"),
                ));
                break;
            }
        }
        found
    }
}

/// The documents a version's `$ref`s reach, transitively, parsed for one comparison: the registry
/// keeps only their text.
struct DocumentSet {
    by_path: HashMap<String, Value>,
    root: String,
    index: std::sync::Arc<JsonDocuments>,
}

impl DocumentSet {
    fn gather(schema: &JsonSchema) -> Self {
        let index = schema.documents.clone();
        let mut by_path = HashMap::new();
        let mut pending = vec![schema.file.clone()];
        while let Some(path) = pending.pop() {
            if by_path.contains_key(&path) {
                continue;
            }
            let own = (path == schema.file)
                .then_some(schema.own_text.as_ref())
                .flatten();
            let parsed = match own {
                Some(text) => serde_json::from_slice(text).ok(),
                None => index.parse(&path),
            };
            let Some(document) = parsed else {
                continue;
            };
            for target in ref_targets(&document) {
                pending.extend(index.resolve(&path, target));
            }
            by_path.insert(path, document);
        }
        Self {
            by_path,
            root: schema.file.clone(),
            index,
        }
    }

    fn root(&self) -> Option<Node<'_>> {
        let (file, document) = self.by_path.get_key_value(&self.root)?;
        Some(Node::root(document, file))
    }
}

/// A schema and the document it sits in (for resolving `$ref`s relative to that document).
#[derive(Clone, Copy)]
struct Node<'a> {
    schema: &'a Value,
    document: &'a Value,
    file: &'a str,
}

impl<'a> Node<'a> {
    fn root(document: &'a Value, file: &'a str) -> Self {
        Self {
            schema: document,
            document,
            file,
        }
    }

    fn child(self, schema: &'a Value) -> Self {
        Self { schema, ..self }
    }

    fn get(self, keyword: &str) -> Option<&'a Value> {
        self.schema.as_object()?.get(keyword)
    }
}

struct Walk<'a> {
    breaks: Breaks,
    reader_name: &'static str,
    writer_name: &'static str,
    reader: &'a DocumentSet,
    writer: &'a DocumentSet,
    /// (reader, writer) pairs of `$ref` targets already compared, so recursive schemas terminate.
    seen: HashSet<(usize, usize)>,
    found: Vec<Incompatibility>,
    /// Pairs compared so far in the whole comparison, trials of alternatives included.
    steps: &'a Cell<usize>,
}

/// A schema with its `allOf` parts merged in and its `anyOf`/`oneOf` spread into alternatives.
type Alternatives = Vec<Value>;

impl<'a> Walk<'a> {
    /// Counts one more pair compared; false once the comparison is past [`MAX_STEPS`].
    fn step(&self) -> bool {
        self.steps.set(self.steps.get() + 1);
        self.steps.get() <= MAX_STEPS
    }

    fn report(&mut self, rule: &'static str, path: &str, message: String) {
        self.found.push(Incompatibility::new(
            self.breaks,
            rule,
            display_path(path),
            message,
        ));
    }

    fn report_if(&mut self, condition: bool, rule: &'static str, path: &str, message: String) {
        if condition {
            self.report(rule, path, message);
        }
    }

    /// Reports why `reader` refuses documents `writer` accepts, at instance location `path`.
    fn compare<'b>(&mut self, reader: Node<'b>, writer: Node<'b>, path: &str, depth: usize)
    where
        'a: 'b,
    {
        if depth > MAX_DEPTH || !self.step() {
            return;
        }
        let reader = self.resolve(reader, true, path);
        let writer = self.resolve(writer, false, path);
        let (Some((reader, reader_followed)), Some((writer, writer_followed))) = (reader, writer)
        else {
            return;
        };
        // Both targets live in the repository's documents, so their addresses identify them.
        if reader_followed
            && writer_followed
            && !self.seen.insert((
                reader.schema as *const _ as usize,
                writer.schema as *const _ as usize,
            ))
        {
            return;
        }
        if writer.schema == &Value::Bool(false) || accepts_anything(reader.schema) {
            return;
        }
        if reader.schema == &Value::Bool(false) {
            let (r, w) = (self.reader_name, self.writer_name);
            self.report(
                "everything_refused",
                path,
                format!("{r} accepts nothing here, where {w} accepted data"),
            );
            return;
        }
        let reader_alternatives = alternatives(reader.schema);
        let writer_alternatives = alternatives(writer.schema);
        if let [only] = reader_alternatives.as_slice() {
            // One way to read: every way to write must fit it, and each misfit is explained.
            for writer_alternative in &writer_alternatives {
                self.compare_object(
                    reader.child(only),
                    writer.child(writer_alternative),
                    path,
                    depth,
                );
            }
            return;
        }
        self.compare_alternatives(
            reader,
            writer,
            &reader_alternatives,
            &writer_alternatives,
            path,
            depth,
        );
    }

    /// Several ways to read: reports each writer alternative that no reader alternative accepts,
    /// trying each pair in a separate walk so a rejected trial leaves no findings behind.
    fn compare_alternatives<'b>(
        &mut self,
        reader: Node<'b>,
        writer: Node<'b>,
        reader_alternatives: &[Value],
        writer_alternatives: &[Value],
        path: &str,
        depth: usize,
    ) where
        'a: 'b,
    {
        for (index, writer_alternative) in writer_alternatives.iter().enumerate() {
            let accepted = reader_alternatives.iter().any(|reader_alternative| {
                let mut trial = Walk {
                    breaks: self.breaks,
                    reader_name: self.reader_name,
                    writer_name: self.writer_name,
                    reader: self.reader,
                    writer: self.writer,
                    seen: self.seen.clone(),
                    found: Vec::new(),
                    steps: self.steps,
                };
                trial.compare_object(
                    reader.child(reader_alternative),
                    writer.child(writer_alternative),
                    path,
                    depth,
                );
                trial.found.is_empty()
            });
            if !accepted {
                let (r, w) = (self.reader_name, self.writer_name);
                self.report(
                    "alternative_removed",
                    path,
                    format!(
                        "alternative {} of {w} ({}) is accepted by no alternative of {r}",
                        index + 1,
                        crate::formats::preview(writer_alternative)
                    ),
                );
            }
        }
    }

    /// Follows `$ref` chains, saying whether one was followed; `None` (after reporting) when a
    /// reference leads nowhere.
    fn resolve<'b>(
        &mut self,
        mut node: Node<'b>,
        is_reader: bool,
        path: &str,
    ) -> Option<(Node<'b>, bool)>
    where
        'a: 'b,
    {
        let mut followed = false;
        for _ in 0..MAX_DEPTH {
            let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
                return Some((node, followed));
            };
            let schema: &'b DocumentSet = if is_reader { self.reader } else { self.writer };
            match follow(node, reference, schema) {
                Some(next) => {
                    node = next;
                    followed = true;
                }
                None => {
                    let owner = if is_reader {
                        self.reader_name
                    } else {
                        self.writer_name
                    };
                    self.report(
                        "reference_unresolved",
                        path,
                        format!("`$ref` {reference} of {owner} cannot be followed inside the repository, so compatibility cannot be shown"),
                    );
                    return None;
                }
            }
        }
        Some((node, followed))
    }

    /// Compares two schemas without alternatives.
    fn compare_object<'b>(&mut self, reader: Node<'b>, writer: Node<'b>, path: &str, depth: usize)
    where
        'a: 'b,
    {
        if !self.step() {
            return;
        }
        self.compare_types(reader, writer, path);
        self.compare_enums(reader, writer, path);
        self.compare_required(reader, writer, path);
        self.compare_properties(reader, writer, path, depth);
        self.compare_items(reader, writer, path, depth);
        self.compare_bounds(reader, writer, path);
        self.compare_assertions(reader, writer, path);
    }

    /// Reports each key the reader requires that the writer did not: writer data may lack it.
    fn compare_required(&mut self, reader: Node<'_>, writer: Node<'_>, path: &str) {
        let (r, w) = (self.reader_name, self.writer_name);
        let reader_required = string_set(reader.get("required"));
        let writer_required = string_set(writer.get("required"));
        for key in reader_required.difference(&writer_required) {
            self.report(
                "required_added",
                &join(path, key),
                format!("{r} requires `{key}`, which {w} did not: its data may lack it"),
            );
        }
    }

    /// Compares array `items`: tuple forms must be equal, a single schema is walked (against
    /// "anything" when only the reader has one).
    fn compare_items<'b>(&mut self, reader: Node<'b>, writer: Node<'b>, path: &str, depth: usize)
    where
        'a: 'b,
    {
        let (r, w) = (self.reader_name, self.writer_name);
        let reader_items = reader.get("items");
        let writer_items = writer.get("items");
        match (reader_items, writer_items) {
            (Some(r_items), Some(w_items)) if r_items.is_array() || w_items.is_array() => {
                let changed = r_items != w_items;
                self.report_if(
                    changed,
                    "items_changed",
                    &join(path, "*"),
                    format!("the tuple `items` of {r} differ from those of {w}"),
                );
            }
            (Some(r_items), Some(w_items)) => self.compare(
                reader.child(r_items),
                writer.child(w_items),
                &join(path, "*"),
                depth + 1,
            ),
            (Some(r_items), None) => self.compare(
                reader.child(r_items),
                writer.child(&Value::Bool(true)),
                &join(path, "*"),
                depth + 1,
            ),
            _ => {}
        }
    }

    /// Reports numeric, length and count bounds the reader adds or tightens, and a `multipleOf`
    /// the writer's does not divide into.
    fn compare_bounds(&mut self, reader: Node<'_>, writer: Node<'_>, path: &str) {
        let (r, w) = (self.reader_name, self.writer_name);
        for keyword in LOWER_BOUNDS {
            if let Some(bound) = reader.get(keyword).and_then(Value::as_f64) {
                let before = writer.get(keyword).and_then(Value::as_f64);
                if before.is_none_or(|before| bound > before) {
                    self.report_bound(keyword, path, bound, before);
                }
            }
        }
        for keyword in UPPER_BOUNDS {
            if let Some(bound) = reader.get(keyword).and_then(Value::as_f64) {
                let before = writer.get(keyword).and_then(Value::as_f64);
                if before.is_none_or(|before| bound < before) {
                    self.report_bound(keyword, path, bound, before);
                }
            }
        }
        if let Some(step) = reader.get("multipleOf").and_then(Value::as_f64) {
            let before = writer.get("multipleOf").and_then(Value::as_f64);
            if before.is_none_or(|before| (before / step).fract().abs() > f64::EPSILON) {
                self.report(
                    "multiple_of_changed",
                    path,
                    format!("{r} requires multiples of {step}, which {w} did not"),
                );
            }
        }
    }

    /// Reports other assertions the reader adds or changes: `pattern`, `format`, `uniqueItems`,
    /// and the keywords Sluice cannot prove harmless ([`UNPROVEN_KEYWORDS`]).
    fn compare_assertions(&mut self, reader: Node<'_>, writer: Node<'_>, path: &str) {
        let (r, w) = (self.reader_name, self.writer_name);
        for (keyword, rule) in [("pattern", "pattern_changed"), ("format", "format_changed")] {
            if let Some(value) = reader.get(keyword) {
                if writer.get(keyword) != Some(value) {
                    self.report(
                        rule,
                        path,
                        format!("{r} asserts {keyword} {value}, which {w} did not"),
                    );
                }
            }
        }
        if reader.get("uniqueItems") == Some(&Value::Bool(true))
            && writer.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.report(
                "unique_items_added",
                path,
                format!("{r} requires unique items, which {w} did not"),
            );
        }
        for keyword in UNPROVEN_KEYWORDS {
            if let Some(value) = reader.get(keyword) {
                if writer.get(keyword) != Some(value) {
                    self.report(
                        "constraint_changed",
                        path,
                        format!("{r} adds or changes `{keyword}`, which Sluice cannot prove accepts all data of {w}"),
                    );
                }
            }
        }
    }

    fn report_bound(&mut self, keyword: &str, path: &str, bound: f64, before: Option<f64>) {
        let (r, w) = (self.reader_name, self.writer_name);
        let was = before.map_or_else(|| "had none".to_owned(), |b| format!("had {b}"));
        self.report(
            "bound_tightened",
            path,
            format!("{r} sets {keyword} {bound} where {w} {was}: some of its data is refused"),
        );
    }

    fn compare_types<'b>(&mut self, reader: Node<'b>, writer: Node<'b>, path: &str) {
        let Some(reader_types) = types(reader.schema) else {
            return;
        };
        let (r, w) = (self.reader_name, self.writer_name);
        match types(writer.schema) {
            None => self.report(
                "type_narrowed",
                path,
                format!(
                    "{r} accepts only {}, where {w} accepted any type",
                    reader_types.join(" or ")
                ),
            ),
            Some(writer_types) => {
                for t in &writer_types {
                    let accepted = reader_types.contains(t)
                        || (t == "integer" && reader_types.iter().any(|r| r == "number"));
                    if !accepted {
                        self.report(
                            "type_narrowed",
                            path,
                            format!("{w} accepted {t}, {r} only {}", reader_types.join(" or ")),
                        );
                    }
                }
            }
        }
    }

    fn compare_enums<'b>(&mut self, reader: Node<'b>, writer: Node<'b>, path: &str) {
        let Some(allowed) = enum_values(reader.schema) else {
            return;
        };
        let (r, w) = (self.reader_name, self.writer_name);
        match enum_values(writer.schema) {
            None => self.report(
                "enum_narrowed",
                path,
                format!("{r} allows only listed values, where {w} allowed any"),
            ),
            Some(written) => {
                for value in written.iter().filter(|v| !allowed.contains(v)) {
                    self.report(
                        "enum_value_removed",
                        path,
                        format!("{w} allowed {value}, {r} does not"),
                    );
                }
            }
        }
    }

    /// Compares content models: the properties each side lists, then `additionalProperties`.
    fn compare_properties<'b>(
        &mut self,
        reader: Node<'b>,
        writer: Node<'b>,
        path: &str,
        depth: usize,
    ) where
        'a: 'b,
    {
        self.compare_written_properties(reader, writer, path, depth);
        self.compare_unwritten_properties(reader, writer, path, depth);
        self.compare_additional_properties(reader, writer, path, depth);
    }

    /// Each property the writer lists: against the reader's own schema for it, else refused by a
    /// closed reader model, else against the reader's `additionalProperties`.
    fn compare_written_properties<'b>(
        &mut self,
        reader: Node<'b>,
        writer: Node<'b>,
        path: &str,
        depth: usize,
    ) where
        'a: 'b,
    {
        let (r, w) = (self.reader_name, self.writer_name);
        let reader_properties = listed_properties(reader);
        let reader_rest = reader.get("additionalProperties");
        for (key, writer_property) in listed_properties(writer).into_iter().flatten() {
            let at = join(path, key);
            match reader_properties.and_then(|properties| properties.get(key)) {
                Some(reader_property) => self.compare(
                    reader.child(reader_property),
                    writer.child(writer_property),
                    &at,
                    depth + 1,
                ),
                None if is_closed(reader_rest) => self.report(
                    "property_removed_from_closed_model",
                    &at,
                    format!("{r} no longer lists `{key}` and allows no other properties, so data of {w} with `{key}` is refused"),
                ),
                None => {
                    if let Some(rest) = reader_rest {
                        self.compare(reader.child(rest), writer.child(writer_property), &at, depth + 1);
                    }
                }
            }
        }
    }

    /// Each property only the reader lists, where the writer's open model let it through: against
    /// the writer's `additionalProperties` schema, else refused unless the reader accepts anything.
    fn compare_unwritten_properties<'b>(
        &mut self,
        reader: Node<'b>,
        writer: Node<'b>,
        path: &str,
        depth: usize,
    ) where
        'a: 'b,
    {
        let (r, w) = (self.reader_name, self.writer_name);
        let writer_properties = listed_properties(writer);
        let writer_rest = writer.get("additionalProperties");
        for (key, reader_property) in listed_properties(reader).into_iter().flatten() {
            if writer_properties.is_some_and(|properties| properties.contains_key(key))
                || is_closed(writer_rest)
            {
                continue;
            }
            let at = join(path, key);
            match writer_rest {
                Some(rest) if rest.is_object() => {
                    self.compare(reader.child(reader_property), writer.child(rest), &at, depth + 1)
                }
                _ if accepts_anything(reader_property) => {}
                _ => self.report(
                    "property_added_to_open_model",
                    &at,
                    format!("{r} constrains `{key}`, which {w} allowed with any value (its content model is open)"),
                ),
            }
        }
    }

    /// Compares `additionalProperties`: a reader closing the model, or the reader's schema for
    /// unlisted properties against the writer's (or against anything when the writer has none).
    fn compare_additional_properties<'b>(
        &mut self,
        reader: Node<'b>,
        writer: Node<'b>,
        path: &str,
        depth: usize,
    ) where
        'a: 'b,
    {
        static ANYTHING: Value = Value::Bool(true);
        let (r, w) = (self.reader_name, self.writer_name);
        let reader_rest = reader.get("additionalProperties");
        let writer_rest = writer.get("additionalProperties");
        match (reader_rest, writer_rest) {
            (Some(reader_rest), _) if is_closed(Some(reader_rest)) => self.report_if(
                !is_closed(writer_rest),
                "content_model_closed",
                path,
                format!("{r} allows no properties beyond those it lists, where {w} allowed others"),
            ),
            (Some(reader_rest), Some(writer_rest)) if !is_closed(Some(writer_rest)) => self
                .compare(
                    reader.child(reader_rest),
                    writer.child(writer_rest),
                    &join(path, "*"),
                    depth + 1,
                ),
            (Some(reader_rest), None) => self.compare(
                reader.child(reader_rest),
                writer.child(&ANYTHING),
                &join(path, "*"),
                depth + 1,
            ),
            _ => {}
        }
    }
}

/// The `properties` a schema lists, if it lists any.
fn listed_properties<'b>(node: Node<'b>) -> Option<&'b Map<String, Value>> {
    node.get("properties").and_then(Value::as_object)
}

/// Whether an `additionalProperties` value closes the content model (`false`).
fn is_closed(rest: Option<&Value>) -> bool {
    rest == Some(&Value::Bool(false))
}

/// Resolves `reference` from `node`: `#pointer` inside its document, a relative path (plus
/// pointer) to another repository file, or another file's absolute `$id`.
fn follow<'a>(node: Node<'a>, reference: &str, documents: &'a DocumentSet) -> Option<Node<'a>> {
    let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    let (file, document): (&'a str, &'a Value) = if target.is_empty() {
        (node.file, node.document)
    } else {
        let path = documents.index.resolve(node.file, target)?;
        let (file, document) = documents.by_path.get_key_value(&path)?;
        (file, document)
    };
    let schema = if pointer.is_empty() {
        document
    } else {
        // A pointer in a URI fragment may be percent-encoded (RFC 6901 §6).
        let pointer = percent_encoding::percent_decode_str(pointer)
            .decode_utf8()
            .ok()?;
        document.pointer(&pointer)?
    };
    Some(Node {
        schema,
        document,
        file,
    })
}

/// `target` relative to the folder of `file`, with `.` and `..` applied.
pub(super) fn join_relative(file: &str, target: &str) -> String {
    let mut parts: Vec<&str> = file.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// A schema's `allOf` merged in and its `anyOf`/`oneOf` spread: one merged object per alternative.
fn alternatives(schema: &Value) -> Alternatives {
    let Some(object) = schema.as_object() else {
        return vec![schema.clone()];
    };
    let mut base = object.clone();
    if let Some(Value::Array(parts)) = base.remove("allOf") {
        for part in parts {
            if let Value::Object(part) = part {
                merge_into(&mut base, part);
            }
        }
    }
    let choices = match (base.remove("anyOf"), base.remove("oneOf")) {
        (Some(Value::Array(any)), _) => any,
        (_, Some(Value::Array(one))) => one,
        _ => return vec![Value::Object(base)],
    };
    choices
        .into_iter()
        .map(|choice| {
            let mut merged = base.clone();
            if let Value::Object(choice) = choice {
                merge_into(&mut merged, choice);
            }
            Value::Object(merged)
        })
        .collect()
}

/// Merges `part` into `base`: `properties` and `required` are united, other keywords from `part`
/// are added where `base` lacks them.
fn merge_into(base: &mut Map<String, Value>, part: Map<String, Value>) {
    for (keyword, value) in part {
        match (keyword.as_str(), base.get_mut(&keyword), value) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (key, schema) in theirs {
                    mine.entry(key).or_insert(schema);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for key in theirs {
                    if !mine.contains(&key) {
                        mine.push(key);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                base.insert(keyword, value);
            }
        }
    }
}

/// Whether a schema accepts every document (`true`, or no assertion keyword at all).
fn accepts_anything(schema: &Value) -> bool {
    const ANNOTATIONS: &[&str] = &[
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$defs",
        "definitions",
    ];
    match schema {
        Value::Bool(b) => *b,
        Value::Object(object) => object.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

fn types(schema: &Value) -> Option<Vec<String>> {
    match schema.as_object()?.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn enum_values(schema: &Value) -> Option<Vec<Value>> {
    let object = schema.as_object()?;
    if let Some(value) = object.get("const") {
        return Some(vec![value.clone()]);
    }
    object.get("enum")?.as_array().cloned()
}

fn string_set(value: Option<&Value>) -> HashSet<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn join(path: &str, key: &str) -> String {
    format!("{path}/{}", crate::formats::pointer_escape(key))
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::formats::Compare;
    use crate::formats::RepoFiles;

    fn compile(schema: Value) -> JsonSchema {
        compile_with(schema, &[])
    }

    fn compile_with(schema: Value, others: &[(&str, Value)]) -> JsonSchema {
        let files: RepoFiles = others
            .iter()
            .map(|(p, v)| (p.to_string(), Bytes::from(v.to_string())))
            .chain([("orders/v1.json".to_owned(), Bytes::from(schema.to_string()))])
            .collect();
        JsonSchema::compile(Path::new("orders/v1.json"), &schema.to_string(), &files).unwrap()
    }

    /// The (breaks, rule) pairs found going from `old` to `new`.
    fn rules(old: Value, new: Value) -> Vec<(Breaks, &'static str)> {
        compile(new)
            .changes_since(&compile(old))
            .into_iter()
            .map(|c| (c.breaks, c.rule))
            .collect()
    }

    #[test]
    fn adding_an_optional_property_to_a_closed_model_is_fully_compatible() {
        let old = json!({"type":"object","properties":{"id":{"type":"string"}},"additionalProperties":false});
        let new = json!({"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}},"additionalProperties":false});
        // Forward: the old closed model refuses data carrying `note`.
        assert_eq!(
            rules(old, new),
            vec![(Breaks::Forward, "property_removed_from_closed_model")]
        );
    }

    #[test]
    fn adding_a_constrained_property_to_an_open_model_breaks_backward() {
        let old = json!({"type":"object","properties":{"id":{"type":"string"}}});
        let new =
            json!({"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}}});
        assert_eq!(
            rules(old, new),
            vec![(Breaks::Backward, "property_added_to_open_model")]
        );
    }

    #[test]
    fn removing_a_property_from_an_open_model_breaks_forward_only() {
        let old =
            json!({"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}}});
        let new = json!({"type":"object","properties":{"id":{"type":"string"}}});
        assert_eq!(
            rules(old, new),
            vec![(Breaks::Forward, "property_added_to_open_model")]
        );
    }

    #[test]
    fn a_new_required_property_breaks_backward() {
        let old = json!({"type":"object","properties":{"id":{"type":"string"}}});
        let new = json!({"type":"object","properties":{"id":{"type":"string"}},"required":["id"]});
        assert_eq!(rules(old, new), vec![(Breaks::Backward, "required_added")]);
    }

    #[test]
    fn narrowing_a_type_breaks_backward_and_widening_breaks_forward() {
        let number = json!({"properties":{"qty":{"type":"number"}}});
        let integer = json!({"properties":{"qty":{"type":"integer"}}});
        assert_eq!(
            rules(number.clone(), integer.clone()),
            vec![(Breaks::Backward, "type_narrowed")]
        );
        assert_eq!(
            rules(integer, number),
            vec![(Breaks::Forward, "type_narrowed")]
        );
        let either = json!({"properties":{"id":{"type":["string","integer"]}}});
        let string = json!({"properties":{"id":{"type":"string"}}});
        let found = compile(string).changes_since(&compile(either));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "/id");
        assert!(found[0].message.contains("accepted integer"), "{found:?}");
    }

    #[test]
    fn removing_an_enum_value_breaks_backward_and_adding_one_breaks_forward() {
        let two = json!({"enum":["new","paid"]});
        let three = json!({"enum":["new","paid","shipped"]});
        assert_eq!(
            rules(three.clone(), two.clone()),
            vec![(Breaks::Backward, "enum_value_removed")]
        );
        assert_eq!(
            rules(two, three),
            vec![(Breaks::Forward, "enum_value_removed")]
        );
    }

    #[test]
    fn closing_an_open_content_model_breaks_backward() {
        let open = json!({"type":"object","properties":{"id":{}}});
        let closed = json!({"type":"object","properties":{"id":{}},"additionalProperties":false});
        assert_eq!(
            rules(open, closed),
            vec![(Breaks::Backward, "content_model_closed")]
        );
    }

    #[test]
    fn tightening_bounds_breaks_backward() {
        let old =
            json!({"properties":{"qty":{"type":"integer","minimum":1},"sku":{"type":"string"}}});
        let new = json!({"properties":{"qty":{"type":"integer","minimum":5},"sku":{"type":"string","maxLength":8}}});
        assert_eq!(
            rules(old, new),
            vec![
                (Breaks::Backward, "bound_tightened"),
                (Breaks::Backward, "bound_tightened"),
            ]
        );
    }

    #[test]
    fn identical_and_annotation_only_changes_are_compatible() {
        let old = json!({"type":"object","properties":{"id":{"type":"string"}},"required":["id"]});
        let new = json!({"type":"object","title":"Order","properties":{"id":{"type":"string","description":"the id"}},"required":["id"]});
        assert_eq!(rules(old, new), vec![]);
    }

    #[test]
    fn alternatives_must_keep_accepting_every_old_alternative() {
        let old = json!({"properties":{"id":{"anyOf":[{"type":"string"},{"type":"integer"}]}}});
        let new = json!({"properties":{"id":{"anyOf":[{"type":"string"}]}}});
        assert_eq!(
            rules(old.clone(), new),
            vec![(Breaks::Backward, "type_narrowed")]
        );
        let wider = json!({"properties":{"id":{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"null"}]}}});
        assert_eq!(
            rules(old, wider),
            vec![(Breaks::Forward, "alternative_removed")]
        );
    }

    /// Alternatives nested `depth` levels deep, two at each level, each level a `$ref` to the
    /// next: text linear in `depth`, pairs to compare exponential in it.
    fn nested_alternatives(depth: usize) -> Value {
        let mut defs = serde_json::Map::new();
        defs.insert("l0".into(), json!({"type": "string"}));
        for level in 1..=depth {
            let below = json!({"$ref": format!("#/$defs/l{}", level - 1)});
            defs.insert(
                format!("l{level}"),
                json!({"anyOf": [
                    {"type": "object", "properties": {"a": below}},
                    {"type": "object", "properties": {"b": below}},
                ]}),
            );
        }
        json!({"$defs": defs, "$ref": format!("#/$defs/l{depth}")})
    }

    #[test]
    fn alternatives_nested_past_the_step_budget_are_not_shown_compatible() {
        let shallow = nested_alternatives(3);
        assert!(rules(shallow.clone(), shallow).is_empty());
        let deep = nested_alternatives(40);
        let found = rules(deep.clone(), deep);
        assert!(
            found
                .iter()
                .any(|(_, rule)| *rule == "too_complex_to_compare"),
            "{found:?}"
        );
    }

    #[test]
    fn refs_are_followed_inside_the_repository() {
        let money_v1 = json!({"type":"object","properties":{"amount":{"type":"number"}}});
        let old = compile_with(
            json!({"properties":{"total":{"$ref":"../common/money.json"}}}),
            &[("common/money.json", money_v1)],
        );
        let new = compile(
            json!({"properties":{"total":{"type":"object","properties":{"amount":{"type":"integer"}}}}}),
        );
        let found: Vec<_> = new
            .changes_since(&old)
            .into_iter()
            .map(|c| (c.breaks, c.rule, c.path))
            .collect();
        assert_eq!(
            found,
            vec![(
                Breaks::Backward,
                "type_narrowed",
                "/total/amount".to_owned()
            )]
        );
    }

    #[test]
    fn recursive_refs_terminate() {
        let tree = json!({"$defs":{"node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/$defs/node"}}}}},"$ref":"#/$defs/node"});
        assert_eq!(rules(tree.clone(), tree), vec![]);
    }
}
