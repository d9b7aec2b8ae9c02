//! HTTP parameter parsing: query string and form body, and the instance, service and beat parameters.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    roster_node::fuzzing::http_params(data);
});
