//! The one client for a service's seat in a call. The recorder, the camera ingest (and the media
//! server to come) take part in rooms the way participants do: each signs its own join ticket
//! with the API's key ([`Pass`]), enters the first gateway that admits it and exchanges SDP and
//! ICE candidates with peers through it, in the typed messages of `confab-protocol`.
//!
//! - [`Session`] decides: who is in the call, the recorder, rejoining with backoff, `bye`; it is
//!   sans-IO (messages and time in, events and messages out) and tested without a gateway.
//! - [`Call`] carries a session over the WebSocket; a service `select!`s on [`Call::next`] and
//!   keeps only its own policy (whom to answer or offer, what to do with the media).
//! - The webrtc-rs glue both services share: [`peer_events`] (a connection's events as channels),
//!   ICE servers and candidates ([`rtc_ice_servers`], [`rtc_candidate`], [`MediaSection`]) and
//!   trickling ([`signals::trickle`]), send-only sample tracks ([`sample_track`]), and what a camera's connection carries ([`camera_profile`]).

pub mod camera_profile;
mod client;
mod ice;
mod pass;
mod peer_events;
mod send_track;
mod session;
pub mod signals;

pub use client::{Call, Seat};
pub use confab_protocol::signal::{IceCandidate, IceServer, Peer};
pub use ice::{MediaSection, rtc_candidate, rtc_ice_servers};
pub use pass::Pass;
pub use peer_events::{EventChannels, PeerEvents, peer_events};
pub use send_track::{add_send_only, codec, negotiated_payload_type, opus, sample_track, vp8};
pub use session::{Ended, Event, Rejoin, Session};
pub use signals::Signals;
