//! `confab-sfu`, the media server: a browser uploads each track once and the server forwards it to
//! everyone who should see it. Built in steps (issue 16); this is the first: [`forward`], the
//! decisions a selective forwarding unit makes for every packet, as a pure core that the I/O
//! around it (sockets, the WebRTC stack, signaling) will drive.

pub mod forward;
