//! Compiles `proto/**/*.proto` with protox (a protobuf compiler in Rust, so no protoc is needed)
//! and generates Rust types with prost and gRPC clients and servers with tonic.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [root.join("hourglass/internal/v1/buffer.proto"), root.join("hourglass/ingest/v1/ingest.proto")];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
