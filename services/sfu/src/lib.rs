//! `confab-sfu`, the media server: a browser uploads each track once and the server forwards it to
//! everyone who should see it. Built in steps (issue 16); so far its pure cores, which the I/O
//! around them (sockets, the WebRTC stack, signaling) will drive: [`forward`], the decisions a
//! selective forwarding unit makes for every packet, [`forwarder`], which routes a room's packets
//! through them, [`room`], who may send media and who receives it, [`speakers`], who is
//! speaking, and [`demux`], which connection a datagram on the shared UDP port is for.

pub mod connection;
pub mod demux;
pub mod forward;
pub mod forwarder;
pub mod keyframe_requests;
pub mod media_loop;
pub mod room;
pub mod server;
pub mod speakers;
