//! Generates the Rust types of `proto/` (prost) and their proto3 JSON mapping (pbjson, with
//! proto field names kept in snake_case). Needs `protoc` (Debian: protobuf-compiler), which the
//! deploy/local scripts install.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = ["confab/signal/v1/signal.proto", "confab/bus/v1/bus.proto"].map(|p| root.join(p));
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("descriptor.bin");
    prost_build::Config::new().file_descriptor_set_path(&descriptor).compile_protos(&protos, &[&root])?;
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor)?)?
        .preserve_proto_field_names()
        .build(&[".confab"])?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
