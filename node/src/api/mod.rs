//! The client plane: Nacos 2.x gRPC and the Nacos Open API over HTTP,
//! sharing [`ClientState`].

pub mod grpc;
pub mod http;
pub mod state;

pub use self::state::ClientState;
