//! gRPC payload decoding: the Payload envelope and the JSON bodies of the Nacos requests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    roster_node::fuzzing::grpc_payload(data);
});
