//! The Rust types of Confab's protocols, generated from `proto/` (the single source of truth):
//! `signal` is what browsers and gateways exchange (as proto3 JSON), `bus` what services
//! exchange over Redis (binary protobuf on channels, proto3 JSON in stored values).

/// Modules mirror the protobuf packages, so generated cross-package paths resolve.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod confab {
    pub mod signal {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/confab.signal.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/confab.signal.v1.serde.rs"));
        }
    }

    pub mod bus {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/confab.bus.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/confab.bus.v1.serde.rs"));
        }
    }
}

pub use confab::bus::v1 as bus;
pub use confab::signal::v1 as signal;
