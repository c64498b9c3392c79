//! Who a service is in one room: the service signs its own single-use join tickets with the API's
//! key (room role `recorder`, `camera` or `sfu`), so it needs no API to take its seat.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use confab_common::tokens::SigningKeys;
use confab_domain::ticket::{TicketClaims, TicketHolder};
use confab_domain::{CallRole, MediaRouting, RoomMode};

/// What a service's tickets for one room say.
#[derive(Clone)]
pub struct Pass {
    pub keys: Arc<SigningKeys>,
    pub issuer: String,
    pub user_id: String,
    pub display_name: String,
    /// One of [`CallRole::SERVICES`].
    pub role: CallRole,
    pub room_id: String,
    pub recording_id: Option<String>,
    /// The media server's tickets: the room's media settings, as its participants' tickets carry
    /// them, so that the gateway can place the room on another SFU should this one die.
    pub room_settings: Option<(MediaRouting, RoomMode)>,
}

impl Pass {
    /// A fresh single-use ticket, valid for the longest time tickets may live.
    pub(crate) fn ticket(&self) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let holder = TicketHolder {
            user_id: self.user_id.clone(),
            display_name: self.display_name.clone(),
            room_id: self.room_id.clone(),
            role: self.role,
            // Services take no place in the room.
            max_participants: 0,
            recording_id: self.recording_id.clone(),
        };
        let claims = TicketClaims::issue(&self.issuer, holder, now);
        let claims = match self.room_settings {
            Some((media, mode)) => claims.with_room_settings(media, mode),
            None => claims,
        };
        Ok(self.keys.sign(&claims)?)
    }
}
