//! The recorder's job worker against real Postgres, Redis and in-process gateways: it takes a
//! queued recording, joins the call as the hidden recorder (participants are told), leaves when
//! the API stops the recording, records the outcome, takes over the job of a dead recorder (and
//! rebuilds the files a `kill -9`ed recorder process left, which a room member then downloads
//! through the API), and rejoins when its gateway goes. A camera (room role `camera`, as the
//! ingest joins) is told about the recording like everyone, offers H.264 and PCMU, and is
//! recorded into Matroska; a camera file a dead recorder left is rebuilt like a participant's.
//!
//! One binary, a module a behaviour: the queue ([`jobs`]), participants' files
//! ([`participants`]), recorders that die or lose their gateway ([`crashes`]), disks that fail or
//! fill ([`disk`]), cameras ([`cameras`]); [`world`] is what they run in.

#[path = "../support/mod.rs"]
mod support;

mod cameras;
mod crashes;
mod disk;
mod jobs;
mod participants;
mod world;
