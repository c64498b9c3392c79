//! The Rust types of Confab's protocols, generated from `proto/` (the single source of truth):
//! `signal` is what browsers and gateways exchange (as proto3 JSON), `bus` what services
//! exchange over Redis (as binary protobuf).

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod signal {
    include!(concat!(env!("OUT_DIR"), "/confab.signal.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/confab.signal.v1.serde.rs"));
}

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod bus {
    include!(concat!(env!("OUT_DIR"), "/confab.bus.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/confab.bus.v1.serde.rs"));
}
