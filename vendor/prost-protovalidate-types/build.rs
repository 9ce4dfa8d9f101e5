//! Compiles `buf/validate/validate.proto` with protox (a protobuf compiler in Rust) rather than a
//! system `protoc`, then generates the prost types from the compiled descriptors: with `reflect`,
//! deriving `ReflectMessage` against the `DESCRIPTOR_POOL` static as prost-reflect-build does.

use std::env;
use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "proto";
    let files = ["buf/validate/validate.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={proto_dir}/{f}");
    }
    let base_path = PathBuf::from(
        env::var("OUT_DIR")
            .map_err(|err| format!("missing OUT_DIR environment variable: {err}"))?,
    );
    let descriptors = protox::compile(files, [proto_dir])?;
    std::fs::write(
        base_path.join("file_descriptor_set.bin"),
        descriptors.encode_to_vec(),
    )?;

    let mut config = prost_build::Config::new();
    #[cfg(feature = "reflect")]
    {
        let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(descriptors.clone())?;
        for message in pool.all_messages() {
            let full_name = message.full_name();
            config
                .type_attribute(full_name, "#[derive(::prost_reflect::ReflectMessage)]")
                .type_attribute(
                    full_name,
                    format!(r#"#[prost_reflect(message_name = "{full_name}")]"#),
                )
                .type_attribute(
                    full_name,
                    r#"#[prost_reflect(descriptor_pool = "DESCRIPTOR_POOL")]"#,
                );
        }
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
