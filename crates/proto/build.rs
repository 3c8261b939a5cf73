//! Generates the gRPC code from proto/ with a vendored protoc, so a fresh machine needs no
//! system protoc.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; this only tells prost-build where protoc is.
    unsafe { std::env::set_var("PROTOC", protoc) };
    // Read at run time, not with env!: a build script binary cached in a shared target dir
    // may be reused from another checkout, and a baked-in path would point there.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = root.join("sluice/v1/sluice.proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("sluice_descriptor.bin"))
        .compile_protos(std::slice::from_ref(&file), &[root])?;
    println!("cargo:rerun-if-changed={}", file.display());
    Ok(())
}
