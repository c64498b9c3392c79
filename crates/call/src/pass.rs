//! Who a service is in one room: the service signs its own single-use join tickets with the API's
//! key (room role `recorder`, `camera` or `sfu`), so it needs no API to take its seat.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use confab_common::tokens::SigningKeys;
use confab_domain::CallRole;
use confab_domain::ticket::{TicketClaims, TicketHolder};

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
        Ok(self.keys.sign(&TicketClaims::issue(&self.issuer, holder, now))?)
    }
}
