//! Generated gRPC code for the `sluice.v1` API (see proto/sluice/v1/sluice.proto).

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("sluice.v1");

    /// Encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sluice_descriptor");
}
