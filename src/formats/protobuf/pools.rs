//! Many Protobuf versions compiled into few descriptor pools. Versions of a large repository
//! import the same files (a tree of shared `.proto`s); compiled one by one, each version would
//! parse its whole import tree again and keep its own pool of it. Here the versions of a build
//! share pools: each version goes into the first pool it compiles in, where the files it imports
//! are already compiled. Two versions defining the same names (`v1.proto` and `v2.proto` of one
//! schema, usually) cannot share one, so the second goes into the next pool: a build holds about
//! as many pools as a schema has versions, not one per version.
//!
//! A pool resolves a file's names only against the files that file imports (prost-reflect
//! refuses a name defined in a file not imported), so a version compiles in a shared pool exactly
//! when it compiles alone; a version that compiles in no shared pool is compiled alone, and that
//! error is its error.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::DescriptorPool;

use super::wire::PoolPlan;
use super::{compiler_for, RepoResolver};
use crate::formats::{CompileError, RepoFiles};

/// Each version file's compiled pool, or why it does not compile.
#[derive(Debug, Default)]
pub struct Pools {
    by_file: HashMap<String, Result<SharedPool, CompileError>>,
}

/// A descriptor pool and the wire walk's plan of its message types, shared by the versions
/// compiled into it.
#[derive(Debug, Clone)]
pub struct SharedPool {
    pub pool: DescriptorPool,
    pub plan: Arc<PoolPlan>,
}

impl SharedPool {
    pub fn new(pool: DescriptorPool) -> Self {
        Self {
            plan: PoolPlan::build(&pool),
            pool,
        }
    }
}

impl Pools {
    /// Compiles the `.proto` version files `files` (repository paths) into shared pools.
    pub fn build<'a>(
        files: impl IntoIterator<Item = &'a str>,
        schema_root: &str,
        repo: &RepoFiles,
    ) -> Self {
        let mut layers: Vec<protox::Compiler> = Vec::new();
        let mut placed: Vec<(String, usize)> = Vec::new();
        let mut by_file = HashMap::new();
        for file in files {
            let name = file.strip_prefix(schema_root).unwrap_or(file);
            let fits = layers
                .iter_mut()
                .position(|layer| layer.open_file(name).is_ok());
            match fits {
                Some(layer) => placed.push((file.to_owned(), layer)),
                None => match new_layer(name, schema_root, repo) {
                    Ok(layer) => {
                        layers.push(layer);
                        placed.push((file.to_owned(), layers.len() - 1));
                    }
                    Err(error) => {
                        by_file.insert(file.to_owned(), Err(error));
                    }
                },
            }
        }
        let pools: Vec<SharedPool> = layers
            .iter()
            .map(|layer| SharedPool::new(layer.descriptor_pool()))
            .collect();
        drop(layers);
        for (file, layer) in placed {
            by_file.insert(file, Ok(pools[layer].clone()));
        }
        Self { by_file }
    }

    /// The pool holding version file `file` compiled, or why it does not compile; `None` for a
    /// file this build did not compile.
    pub fn get(&self, file: &str) -> Option<Result<&SharedPool, &CompileError>> {
        self.by_file.get(file).map(Result::as_ref)
    }

    /// How many distinct pools the versions share.
    #[cfg(test)]
    fn distinct(&self) -> usize {
        let mut seen: Vec<&DescriptorPool> = Vec::new();
        for pool in self.by_file.values().filter_map(|p| p.as_ref().ok()) {
            let pool = &pool.pool;
            if !seen.contains(&pool) {
                seen.push(pool);
            }
        }
        seen.len()
    }
}

/// A new pool holding `name` (a version file, by its name under the schema root) and its imports.
fn new_layer(
    name: &str,
    schema_root: &str,
    repo: &RepoFiles,
) -> Result<protox::Compiler, CompileError> {
    let resolver = RepoResolver {
        compiled: None,
        proto_files: repo.derived::<super::ProtoFiles>(),
        schema_root: schema_root.to_owned(),
    };
    compiler_for(name, resolver)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn repo(files: &[(&str, &str)]) -> RepoFiles {
        files
            .iter()
            .map(|(p, c)| (p.to_string(), Bytes::from(c.to_string())))
            .collect()
    }

    const COMMON: &str =
        "syntax = \"proto3\";\npackage common;\nmessage Money { int64 cents = 1; }\n";

    fn order(version: u32, extra: &str) -> String {
        format!(
            "syntax = \"proto3\";\npackage orders;\nimport \"common/money.proto\";\n\
             message Order {{ string id = 1; common.Money total = 2; {extra} }}\n// v{version}\n"
        )
    }

    #[test]
    fn versions_share_pools_and_conflicting_names_go_to_the_next() {
        let v1 = order(1, "");
        let v2 = order(2, "string note = 3;");
        let files = repo(&[
            ("schemas/common/money.proto", COMMON),
            ("schemas/orders/v1.proto", &v1),
            ("schemas/orders/v2.proto", &v2),
            (
                "schemas/refunds/v1.proto",
                "syntax = \"proto3\";\npackage refunds;\nimport \"common/money.proto\";\n\
                 message Refund { common.Money amount = 1; }\n",
            ),
        ]);
        let versions = [
            "schemas/orders/v1.proto",
            "schemas/orders/v2.proto",
            "schemas/refunds/v1.proto",
        ];
        let pools = Pools::build(versions, "schemas/", &files);
        assert_eq!(
            pools.distinct(),
            2,
            "orders v1 and v2 define the same names"
        );
        let v2_pool = &pools.get("schemas/orders/v2.proto").unwrap().unwrap().pool;
        let order = v2_pool.get_message_by_name("orders.Order").unwrap();
        assert!(order.get_field_by_name("note").is_some(), "v2's own Order");
        let v1_pool = &pools.get("schemas/orders/v1.proto").unwrap().unwrap().pool;
        let refunds_pool = &pools.get("schemas/refunds/v1.proto").unwrap().unwrap().pool;
        assert_eq!(v1_pool, refunds_pool, "no conflict: one pool");
    }

    #[test]
    fn a_name_from_a_file_not_imported_is_refused_as_when_compiled_alone() {
        let files = repo(&[
            ("schemas/common/money.proto", COMMON),
            (
                "schemas/a/v1.proto",
                "syntax = \"proto3\";\nimport \"common/money.proto\";\nmessage A { common.Money m = 1; }\n",
            ),
            (
                "schemas/b/v1.proto",
                "syntax = \"proto3\";\nmessage B { common.Money m = 1; }\n",
            ),
        ]);
        let pools = Pools::build(
            ["schemas/a/v1.proto", "schemas/b/v1.proto"],
            "schemas/",
            &files,
        );
        assert!(pools.get("schemas/a/v1.proto").unwrap().is_ok());
        let error = pools.get("schemas/b/v1.proto").unwrap().unwrap_err();
        let alone = new_layer("b/v1.proto", "schemas/", &files).unwrap_err();
        assert_eq!(error.message, alone.message);
        assert!(error.message.contains("common.Money"), "{}", error.message);
        assert!(pools.get("schemas/c/v1.proto").is_none());
    }
}
