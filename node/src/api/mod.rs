//! The client-facing APIs: Nacos 2.x gRPC and the Nacos Open API v1 over HTTP.

pub mod grpc;
pub mod http;
