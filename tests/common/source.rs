//! The crate's own source read as a graph of files: which file names an item another file defines.
//! `tests/layers.rs` and `tests/circles.rs` check that graph. Modules are found by following `mod`
//! declarations from `src/lib.rs` and `src/main.rs`; a name is followed through `use` and `pub use`
//! to the file that defines it, so a re-export (at the crate root or anywhere) hides no edge.
//! Code under `#[cfg(test)]` is left out: a test module may lean on anything. A file naming a module
//! that contains it (a child's `super::Item`) ties nothing, as Rust's visibility has it; what is
//! reached without being named (a trait object's method, an inferred type) is not seen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One file of the crate and the module it is.
#[derive(Debug)]
pub struct File {
    /// `src/…`, as it is named in failures.
    pub path: String,
    /// The crate root it hangs from (`lib` or `main`) and its module path below it.
    pub module: (String, Vec<String>),
    /// The text without test code, literals and comments.
    code: String,
    /// The same with doc comments kept, whose links name items too, and top-level `use`s blanked.
    names: String,
    /// The code with top-level `use`s blanked: where `use`s inside items are read.
    body: String,
    /// Items defined at its top level.
    defines: BTreeSet<String>,
    /// Names brought in by `use` (and `pub use`): name → absolute path, and whether it is public.
    uses: BTreeMap<String, (Vec<String>, bool)>,
    /// Modules `use …::*` brings in whole, and whether it hands them on (`pub use`).
    globs: Vec<(Vec<String>, bool)>,
}

/// File `from` names `name`, an item (or module) of file `to`, first on `line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub line: usize,
    pub name: String,
}

/// Every file of both crates, and who names whom.
pub struct Source {
    pub files: Vec<File>,
    pub edges: Vec<Edge>,
    /// Files of `src/` that no `mod` declaration outside test code reaches.
    pub unread: Vec<String>,
}

impl Source {
    /// The crate in `src/`.
    pub fn read(src: &Path) -> Self {
        let mut texts = BTreeMap::new();
        read_dir(src, src, &mut texts);
        Self::from_texts(&texts)
    }

    /// A crate written out as `(path, text)` pairs (`lib.rs`, `a/mod.rs`, …), for tests of the
    /// checks themselves.
    pub fn of(files: &[(&str, &str)]) -> Self {
        let texts: BTreeMap<String, String> = files
            .iter()
            .map(|(path, text)| (path.to_string(), text.to_string()))
            .collect();
        Self::from_texts(&texts)
    }

    /// The crates whose files (`lib.rs`, `main.rs`, `a/mod.rs`, `a/b.rs`, …) are `texts`.
    pub fn from_texts(texts: &BTreeMap<String, String>) -> Self {
        let mut files = Vec::new();
        for root in ["lib", "main"] {
            collect(texts, &format!("{root}.rs"), (root, &[]), &mut files);
        }
        let unread = texts
            .keys()
            .map(|name| format!("src/{name}"))
            .filter(|path| !files.iter().any(|f: &File| f.path == *path))
            .collect();
        let mut source = Self {
            files,
            edges: Vec::new(),
            unread,
        };
        source.edges = (0..source.files.len())
            .flat_map(|from| source.edges_from(from))
            .collect();
        source
    }

    /// The file of module `module` of crate `root`, if there is one.
    fn file_of(&self, root: &str, module: &[String]) -> Option<usize> {
        self.files
            .iter()
            .position(|f| f.module.0 == root && f.module.1 == module)
    }

    /// The file defining what absolute `path` of crate `root` names: the deepest module file on
    /// the path, followed through its `use`s when the next segment is an item it imports.
    fn resolve(&self, root: &str, path: &[String], depth: usize) -> Option<usize> {
        if depth > 16 {
            return None;
        }
        let (root, path) = match path.first().map(String::as_str) {
            Some("sluice") if root == "main" => ("lib", &path[1..]),
            _ => (root, path),
        };
        let mut at = self.file_of(root, &[])?;
        for (i, segment) in path.iter().enumerate() {
            if let Some(child) = self.file_of(root, &path[..=i]) {
                at = child;
                continue;
            }
            let file = &self.files[at];
            if file.defines.contains(segment) {
                return Some(at);
            }
            if let Some((target, _)) = file.uses.get(segment) {
                let mut target = target.clone();
                target.extend(path[i + 1..].iter().cloned());
                return self.resolve(root, &target, depth + 1);
            }
            for (glob, _) in &file.globs {
                let mut target = glob.clone();
                target.extend(path[i..].iter().cloned());
                if let Some(found) = self.resolve(root, &target, depth + 1) {
                    return Some(found);
                }
            }
            return Some(at);
        }
        Some(at)
    }

    fn edges_from(&self, from: usize) -> Vec<Edge> {
        let file = &self.files[from];
        let (root, module) = (&file.module.0, &file.module.1);
        let mut edges = BTreeMap::new();
        let mut add = |path: Vec<String>, line: usize| {
            let resolved = self.resolve(root, &path, 0);
            if let Some(to) = resolved.filter(|to| *to != from && !self.contains(*to, from)) {
                let name = path.join("::");
                edges.entry(to).or_insert(Edge {
                    from,
                    to,
                    line,
                    name,
                });
            }
        };
        for (name, (path, public)) in &file.uses {
            if !public || word_in(&file.names, name).is_some() {
                add(path.clone(), line_of_use(&file.code, name));
            }
        }
        for (glob, public) in &file.globs {
            if !public {
                add(glob.clone(), 1);
            }
        }
        for (line, path) in nested_uses(&file.body, module) {
            add(path, line);
        }
        for (line, path) in inline_paths(&file.names, module, &self.children(from)) {
            add(path, line);
        }
        edges.into_values().collect()
    }

    /// Whether module file `outer` contains module file `inner`: a module sees the items of the
    /// modules around it as its own, so naming them ties nothing.
    fn contains(&self, outer: usize, inner: usize) -> bool {
        let (outer, inner) = (&self.files[outer].module, &self.files[inner].module);
        outer.0 == inner.0 && outer.1.len() < inner.1.len() && inner.1.starts_with(&outer.1)
    }

    /// The names of the modules file `at` declares.
    fn children(&self, at: usize) -> Vec<String> {
        let (root, module) = &self.files[at].module;
        self.files
            .iter()
            .filter(|f| f.module.0 == *root && f.module.1.len() == module.len() + 1)
            .filter(|f| f.module.1.starts_with(module))
            .map(|f| f.module.1.last().unwrap().clone())
            .collect()
    }
}

fn read_dir(src: &Path, dir: &Path, texts: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_dir(src, &path, texts);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            texts.insert(relative, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Reads file `name` as module `module`, then the files of the modules it declares.
fn collect(
    texts: &BTreeMap<String, String>,
    name: &str,
    (root, module): (&str, &[String]),
    files: &mut Vec<File>,
) {
    let Some(text) = texts.get(name) else {
        return;
    };
    let bare = plain(text, false);
    let tests = test_ranges(&bare);
    let code = blank_ranges(&bare, &tests);
    let top_uses = top_level_uses(&code);
    let names = blank_ranges(&blank_ranges(&plain(text, true), &tests), &top_uses);
    let body = blank_ranges(&code, &top_uses);
    let (defines, declared) = top_level_items(&code);
    let (uses, globs) = use_bindings(&code, module);
    files.push(File {
        path: format!("src/{name}"),
        module: (root.to_owned(), module.to_vec()),
        code,
        names,
        body,
        defines,
        uses,
        globs,
    });
    let dir = match name.strip_suffix("mod.rs") {
        Some(dir) => dir.to_owned(),
        None if module.is_empty() => String::new(),
        None => format!("{}/", name.trim_end_matches(".rs")),
    };
    for child in declared {
        let mut path = module.to_vec();
        path.push(child.clone());
        for candidate in [format!("{dir}{child}.rs"), format!("{dir}{child}/mod.rs")] {
            if texts.contains_key(&candidate) {
                collect(texts, &candidate, (root, &path), files);
            }
        }
    }
}

/// `text` with string and char literals and comments blanked (doc comments kept if `docs`), every
/// byte of them a space but line breaks, so offsets and lines stay those of `text`.
fn plain(text: &str, docs: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut keep = vec![true; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        let Some((end, kept)) = literal_or_comment(&chars, i, docs) else {
            i += 1;
            continue;
        };
        let end = end.min(chars.len());
        if !kept {
            keep[i..end].iter_mut().for_each(|k| *k = false);
        }
        i = end;
    }
    chars
        .iter()
        .zip(keep)
        .map(|(&c, kept)| match kept || c == '\n' {
            true => c.to_string(),
            false => " ".repeat(c.len_utf8()),
        })
        .collect()
}

/// Where the literal or comment starting at `i` ends (exclusive), if one starts there, and whether
/// it is kept (a doc comment, when `docs`).
fn literal_or_comment(chars: &[char], i: usize, docs: bool) -> Option<(usize, bool)> {
    let at = |n: usize| chars.get(i + n).copied();
    let find = |from: usize, pattern: &dyn Fn(usize) -> bool| {
        (from..chars.len())
            .find(|&k| pattern(k))
            .unwrap_or(chars.len())
    };
    match chars[i] {
        '/' if at(1) == Some('/') => {
            let doc = matches!(at(2), Some('/' | '!')) && at(3) != Some('/');
            Some((find(i, &|k| chars[k] == '\n'), doc && docs))
        }
        '/' if at(1) == Some('*') => {
            let mut depth = 0;
            let mut k = i;
            while k + 1 < chars.len() {
                match (chars[k], chars[k + 1]) {
                    ('/', '*') => (depth, k) = (depth + 1, k + 2),
                    ('*', '/') if depth == 1 => return Some((k + 2, false)),
                    ('*', '/') => (depth, k) = (depth - 1, k + 2),
                    _ => k += 1,
                }
            }
            Some((chars.len(), false))
        }
        'r' if matches!(at(1), Some('"' | '#')) && starts_literal(chars, i) => {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                return None;
            }
            let closes = |k: usize| {
                chars[k] == '"'
                    && chars[k + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|c| **c == '#')
                        .count()
                        == hashes
            };
            Some((find(i + 2 + hashes, &closes) + 1 + hashes, false))
        }
        '"' => {
            let mut k = i + 1;
            while k < chars.len() && chars[k] != '"' {
                k += if chars[k] == '\\' { 2 } else { 1 };
            }
            Some((k + 1, false))
        }
        '\'' if at(1) == Some('\\') => Some((find(i + 2, &|k| chars[k] == '\'') + 1, false)),
        '\'' if at(2) == Some('\'') => Some((i + 3, false)),
        _ => None,
    }
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Whether the `r` at `i` opens a raw string (`r"`, `br"`) rather than ends an identifier.
fn starts_literal(chars: &[char], i: usize) -> bool {
    !ident_before(chars, i) || (chars[i - 1] == 'b' && !ident_before(chars, i - 1))
}

/// Where `code`'s items marked `#[cfg(test)]` are.
fn test_ranges(code: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let at = from + found;
        let after = at + "#[cfg(test)]".len();
        let end = match (code[after..].find('{'), code[after..].find(';')) {
            (Some(brace), semi) if semi.is_none_or(|semi| brace < semi) => {
                let open = after + brace + 1;
                (open + matching_brace(&code[open..]) + 1).min(code.len())
            }
            (_, Some(semi)) => after + semi + 1,
            _ => code.len(),
        };
        ranges.push(at..end);
        from = end;
    }
    ranges
}

/// `text` with `ranges` blanked.
fn blank_ranges(text: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut out = text.to_owned();
    for range in ranges {
        out.replace_range(range.clone(), &blank(&text[range.clone()]));
    }
    out
}

/// `text` as spaces of the same length in bytes, line breaks kept.
fn blank(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => "\n".to_owned(),
            c => " ".repeat(c.len_utf8()),
        })
        .collect()
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

/// The statements at brace depth 0 of `code`, each as the byte range it spans. A statement ends
/// at a `;` at depth 0, or at a `}` back to depth 0 unless it is a `use` (whose group has braces).
fn top_level_statements(code: &str) -> Vec<std::ops::Range<usize>> {
    let mut statements = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in code.char_indices() {
        if depth == 0 && code[start..i].trim().is_empty() {
            start = i;
        }
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let ends = match c {
            ';' => depth == 0,
            '}' => depth == 0 && !is_use(&code[start..i]),
            _ => false,
        };
        if ends {
            statements.push(start..i + 1);
            start = i + 1;
        }
    }
    statements
}

/// Whether a statement, attributes aside, is a `use` declaration.
fn is_use(statement: &str) -> bool {
    let head = statement
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or_default();
    head.starts_with("use ") || (head.starts_with("pub") && head.contains(" use "))
}

/// Where `code`'s top-level `use` declarations are.
fn top_level_uses(code: &str) -> Vec<std::ops::Range<usize>> {
    top_level_statements(code)
        .into_iter()
        .filter(|range| is_use(&code[range.clone()]))
        .collect()
}

/// The names of the items `code` defines at its top level, and of the modules it declares with a
/// file of their own (`mod a;`).
fn top_level_items(code: &str) -> (BTreeSet<String>, Vec<String>) {
    const KINDS: [&str; 9] = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "union", "mod",
    ];
    let (mut defines, mut declared) = (BTreeSet::new(), Vec::new());
    for range in top_level_statements(code) {
        let statement = &code[range];
        let head = &statement[..statement.find('{').unwrap_or(statement.len())];
        let words: Vec<&str> = head
            .lines()
            .filter(|line| {
                !line.trim_start().starts_with("//") && !line.trim_start().starts_with('#')
            })
            .flat_map(|line| {
                line.split(|c: char| c.is_whitespace() || c == '<' || c == '(' || c == ':')
            })
            .filter(|w| !w.is_empty())
            .collect();
        let Some(at) = words.iter().position(|w| KINDS.contains(w)) else {
            continue;
        };
        let Some(name) = words.get(at + 1).and_then(|w| first_ident(w)) else {
            continue;
        };
        if words[at] == "mod" && statement.trim_end().ends_with(';') {
            declared.push(name.clone());
        }
        defines.insert(name);
    }
    (defines, declared)
}

/// The `use` declarations at the top level of `code` (in module `module`): each name bound to the
/// absolute path it stands for, with whether the binding is public; and the modules re-exported by
/// glob. Paths into other crates are left out.
#[allow(clippy::type_complexity)]
fn use_bindings(
    code: &str,
    module: &[String],
) -> (
    BTreeMap<String, (Vec<String>, bool)>,
    Vec<(Vec<String>, bool)>,
) {
    let (mut uses, mut globs) = (BTreeMap::new(), Vec::new());
    for range in top_level_statements(code) {
        let statement = &code[range];
        if !is_use(statement) {
            continue;
        }
        let body: String = statement
            .lines()
            .filter(|line| {
                !line.trim_start().starts_with("//") && !line.trim_start().starts_with('#')
            })
            .collect::<Vec<_>>()
            .join(" ");
        let body = body.trim();
        let (public, tree) = match body.split_once("use ") {
            Some((head, tree)) if head.trim().is_empty() => (false, tree),
            Some((head, tree)) if head.trim().starts_with("pub") => (true, tree),
            _ => continue,
        };
        let tree = tree.trim_end_matches(';').trim();
        for (path, binding) in expand_tree(tree, Vec::new()) {
            let Some(path) = absolute(&path, module) else {
                continue;
            };
            match binding {
                None => globs.push((path, public)),
                Some(name) => {
                    uses.insert(name, (path, public));
                }
            }
        }
    }
    (uses, globs)
}

/// The paths of a use tree (`a::{b, c::d as e, f::*}`) with the name each binds (none for a glob).
fn expand_tree(tree: &str, prefix: Vec<String>) -> Vec<(Vec<String>, Option<String>)> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let mut head = prefix;
        head.extend(segments(&tree[..open]));
        let inner = &tree[open + 1..open + 1 + matching_brace(&tree[open + 1..])];
        return split_top_level(inner)
            .into_iter()
            .filter(|item| !item.trim().is_empty())
            .flat_map(|item| expand_tree(item, head.clone()))
            .collect();
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((path, alias)) => (path, Some(alias.trim().to_owned())),
        None => (tree, None),
    };
    let mut full = prefix;
    full.extend(segments(path));
    match full.last().map(String::as_str) {
        Some("*") => {
            full.pop();
            vec![(full, None)]
        }
        Some("self") => {
            full.pop();
            let name = alias.or_else(|| full.last().cloned());
            vec![(full, name)]
        }
        Some(last) => {
            let name = alias.unwrap_or_else(|| last.to_owned());
            vec![(full, Some(name))]
        }
        None => Vec::new(),
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `path` as seen from module `module`, made absolute (from its crate's root); none for a path
/// into another crate (its first segment is no `crate`, `super`, `self`, `sluice` or module of ours,
/// which [`Source::resolve`] tells apart later).
fn absolute(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut at = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str)? {
        "crate" => {
            at.clear();
            rest = &rest[1..];
        }
        "sluice" => return Some(path.to_vec()),
        "self" => rest = &rest[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                at.pop()?;
                rest = &rest[1..];
            }
        }
        first if first.chars().next().is_some_and(char::is_uppercase) => return None,
        _ => {}
    }
    at.extend(rest.iter().cloned());
    Some(at)
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

/// The first line of `code` naming `name` as a whole identifier.
fn word_in(code: &str, name: &str) -> Option<usize> {
    code.lines().position(|line| word_at(line, name).is_some())
}

/// The first line of `code` that binds or names `name`.
fn line_of_use(code: &str, name: &str) -> usize {
    code.lines()
        .position(|line| word_at(line, name).is_some())
        .map_or(1, |at| at + 1)
}

/// Where `word` stands in `line` as a whole identifier.
fn word_at(line: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The paths of the `use` declarations inside items of `code` (its top-level ones blanked), made
/// absolute, with the line of each; globs included.
fn nested_uses(code: &str, module: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("use ").map(|at| from + at) {
        from = at + 4;
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| !(c.is_whitespace() || matches!(c, '{' | '}' | ';' | ')'))) {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|end| at + end) else {
            break;
        };
        let line = code[..at].matches('\n').count() + 1;
        for (path, _) in expand_tree(&code[at + 4..end], Vec::new()) {
            if let Some(path) = absolute(&path, module) {
                found.push((line, path));
            }
        }
    }
    found
}

/// The paths `code` (without its top-level `use` declarations) names, made absolute, with the line
/// of each: those that start at `crate::`, `super::`, `self::` or `sluice::`, and those that start
/// at one of `children`, the modules this file declares.
fn inline_paths(code: &str, module: &[String], children: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("::") {
            let start = rest[..at]
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let first = &rest[start..at];
            let preceded = line[..line.len() - rest.len() + start].ends_with("::");
            let ours = matches!(first, "crate" | "super" | "self" | "sluice")
                || children.iter().any(|c| c == first);
            if !preceded && ours {
                let tail = &rest[start..];
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(tail.len());
                if let Some(path) = absolute(&segments(&tail[..end]), module) {
                    found.push((index + 1, path));
                }
                rest = &tail[end..];
            } else {
                rest = &rest[at + 2..];
            }
        }
    }
    found
}
