//! Compiles `proto/sluice/v1/gateway.proto` into the gRPC server and client code, with protox (a
//! protobuf compiler in Rust) so no system `protoc` is needed, and keeps the encoded descriptor set
//! for gRPC server reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/sluice/v1/gateway.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("sluice_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Payloads, keys and values travel as `Bytes`, not copied into `Vec`s.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
