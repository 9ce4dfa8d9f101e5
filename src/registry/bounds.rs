//! How much of a schema repository the gateway reads and holds: each file at most
//! [`MAX_FILE_BYTES`], a revision at most `registry.max_files` files and
//! `registry.max_repository_bytes` bytes of distinct contents, and a git fetch at most
//! `registry.max_fetch_bytes` received. Every replica reads every commit pushed, so without these
//! a small push could make them all run out of memory on every poll. A revision past a bound is
//! refused whole, naming the key, and the one serving goes on.

/// Files above this size are not part of a schema repository.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The bounds on one revision of the repository and on a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoBounds {
    pub max_files: usize,
    pub max_bytes: u64,
    pub max_fetch_bytes: u64,
}

impl Default for RepoBounds {
    fn default() -> Self {
        Self {
            max_files: 100_000,
            max_bytes: 512 * 1024 * 1024,
            max_fetch_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// A revision or a fetch past its bounds.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OverBounds {
    #[error("{what} holds more than {limit} files (registry.max_files)")]
    Files { what: String, limit: usize },
    #[error("the files of {what} come to more than {limit} bytes (registry.max_repository_bytes)")]
    Bytes { what: String, limit: u64 },
    #[error("{path} in {what} is larger than {MAX_FILE_BYTES} bytes; schema repositories hold text files")]
    File { what: String, path: String },
    #[error("fetching {what} received more than {limit} bytes (registry.max_fetch_bytes); the fetch was stopped")]
    Fetch { what: String, limit: u64 },
}

/// What one revision read so far takes, checked against its bounds as each file is read.
pub struct Tally<'a> {
    bounds: RepoBounds,
    /// The revision, as errors name it.
    what: &'a str,
    files: usize,
    bytes: u64,
}

impl<'a> Tally<'a> {
    pub fn new(bounds: RepoBounds, what: &'a str) -> Self {
        Self {
            bounds,
            what,
            files: 0,
            bytes: 0,
        }
    }

    /// The revision, as errors name it.
    pub fn what(&self) -> &str {
        self.what
    }

    /// Counts one more file (its path is held whatever its contents).
    pub fn file(&mut self) -> Result<(), OverBounds> {
        self.files += 1;
        if self.files > self.bounds.max_files {
            return Err(OverBounds::Files {
                what: self.what.to_owned(),
                limit: self.bounds.max_files,
            });
        }
        Ok(())
    }

    /// Counts `size` bytes of contents read for `path`, before they are read.
    pub fn contents(&mut self, path: &str, size: u64) -> Result<(), OverBounds> {
        if size > MAX_FILE_BYTES {
            return Err(OverBounds::File {
                what: self.what.to_owned(),
                path: path.to_owned(),
            });
        }
        self.bytes += size;
        if self.bytes > self.bounds.max_bytes {
            return Err(OverBounds::Bytes {
                what: self.what.to_owned(),
                limit: self.bounds.max_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_past_a_bound_names_the_key() {
        let bounds = RepoBounds {
            max_files: 2,
            max_bytes: 10,
            max_fetch_bytes: 0,
        };
        let mut tally = Tally::new(bounds, "commit abc");
        tally.file().unwrap();
        tally.contents("a", 6).unwrap();
        tally.file().unwrap();
        let too_many_bytes = tally.contents("b", 6).unwrap_err();
        assert!(too_many_bytes
            .to_string()
            .contains("registry.max_repository_bytes"));
        let too_many_files = tally.file().unwrap_err();
        assert!(too_many_files.to_string().contains("registry.max_files"));
        let huge = Tally::new(bounds, "x").contents("big.json", MAX_FILE_BYTES + 1);
        assert!(huge.unwrap_err().to_string().contains("big.json"));
    }
}
