//! Generates the gRPC code from proto/ without `protoc`: protox parses the .proto in
//! Rust, tonic-prost-build generates from the descriptor set, which is also kept for
//! server reflection.
//!
//! Two passes: the messages and the clients, then the servers over those messages, with
//! one difference: the `Watch` server sends [`WatchFrame`](crate::frame::WatchFrame)s, a
//! `WatchEvent` that may come encoded already, so a change going to 10,000 streams is
//! encoded once, not 10,000 times. On the wire nothing changes.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/tagcfg/v2/watch.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("tagcfg_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::LeanCodec")
        .build_server(false)
        .compile_fds(descriptors.clone())?;
    let servers = out.join("servers");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::LeanCodec")
        .build_client(false)
        .out_dir(&servers)
        .extern_path(".tagcfg.v2", "crate::pb")
        .extern_path(".tagcfg.v2.WatchEvent", "crate::frame::WatchFrame")
        .compile_fds(descriptors)?;
    Ok(())
}
