//! Peer protocol decoding: Distro syncs and client data, Raft commands and RPC messages, member reports.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    roster_node::fuzzing::peer_message(data);
});
