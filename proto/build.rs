//! Compiles the `.proto` files with `protox`, a pure-Rust protobuf compiler,
//! so that building Roster needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/nacos_grpc_service.proto", "proto/roster_peer.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Instance metadata is a sorted map in the store.
        .btree_map(".roster.peer.v1.PublishedInstance.metadata")
        .compile_fds(descriptors)?;
    Ok(())
}
