//! Peer signature headers: parsing, the MAC, the clock window, the body digest and the replay cache.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    roster_node::fuzzing::peer_signature(data);
});
