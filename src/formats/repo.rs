//! The schema repository as an in-memory tree of files: the one input from which a registry
//! snapshot is built, and what a version's `$ref`s and `import`s resolve against. A source (a
//! directory or a git commit) fills it; nothing downstream touches the disk.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// Repository files by `/`-separated path relative to the repository root.
#[derive(Debug, Default)]
pub struct RepoFiles {
    files: BTreeMap<String, Bytes>,
    derived: Derived,
}

/// A value a format derives from a whole tree ([`RepoFiles::derived`]): each type has one way to
/// be built, so values cached by type cannot be mixed up.
pub trait DerivedFromTree: Any + Send + Sync {
    fn derive(repo: &RepoFiles) -> Self;
}

/// What formats derive from a whole tree, built once per tree and type: see [`RepoFiles::derived`].
type DerivedCell = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

#[derive(Default)]
struct Derived(Mutex<HashMap<TypeId, DerivedCell>>);

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

impl RepoFiles {
    pub fn get(&self, path: &str) -> Option<&Bytes> {
        self.files.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.files.iter().map(|(p, b)| (p.as_str(), b))
    }

    /// What a format derives from the whole tree and shares between all the versions compiled
    /// from it (JSON Schema's documents by `$id`, the `.proto` files imports resolve against):
    /// built on first use, once per tree and type, and shared after.
    pub fn derived<T: DerivedFromTree>(&self) -> Arc<T> {
        let cell = self
            .derived
            .0
            .lock()
            .expect("derived lock")
            .entry(TypeId::of::<T>())
            .or_default()
            .clone();
        let value = cell.get_or_init(|| Arc::new(T::derive(self))).clone();
        value
            .downcast()
            .expect("derived values are stored by their type")
    }

    /// The paths whose contents differ in `previous`: changed, added or removed.
    pub fn changed_since<'a>(
        &'a self,
        previous: &'a RepoFiles,
    ) -> impl Iterator<Item = String> + 'a {
        let changed_or_added = self
            .iter()
            .filter(|(path, bytes)| !previous.get(path).is_some_and(|kept| same(kept, bytes)));
        let removed = previous.iter().filter(|(path, _)| self.get(path).is_none());
        changed_or_added
            .chain(removed)
            .map(|(path, _)| path.to_owned())
    }

    /// This tree, holding `previous`'s copy of each file whose contents are the same, so that two
    /// snapshots keep one copy of what they share.
    pub fn sharing_with(&self, previous: &RepoFiles) -> RepoFiles {
        self.iter()
            .map(|(path, bytes)| {
                let kept = previous.get(path).filter(|kept| same(kept, bytes));
                (path.to_owned(), kept.unwrap_or(bytes).clone())
            })
            .collect()
    }

    /// A short fingerprint of the whole tree, shown as the snapshot's revision.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (path, contents) in &self.files {
            path.hash(&mut hasher);
            contents.hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    }
}

/// Whether two files hold the same bytes: at once when they share one copy (a git sync takes an
/// unchanged file from the previous tree), else by comparing them.
fn same(a: &Bytes, b: &Bytes) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

impl RepoFiles {
    /// A tree of text files, for tests: `(path, contents)` pairs.
    #[cfg(test)]
    pub(crate) fn of(files: &[(&str, &str)]) -> Self {
        files
            .iter()
            .map(|(path, text)| (path.to_string(), Bytes::from(text.to_string())))
            .collect()
    }
}

impl FromIterator<(String, Bytes)> for RepoFiles {
    fn from_iter<I: IntoIterator<Item = (String, Bytes)>>(iter: I) -> Self {
        Self {
            files: iter.into_iter().collect(),
            derived: Derived::default(),
        }
    }
}
