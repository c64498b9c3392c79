//! Who a service is in one room: the service signs its own single-use join tickets with the API's
//! key (room role `recorder` or `camera`), so it needs no API to take its seat.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use confab_common::tokens::SigningKeys;
use confab_tickets::{MAX_TICKET_TTL_SECS, TICKET_AUDIENCE, TicketClaims};

/// What a service's tickets for one room say.
#[derive(Clone)]
pub struct Pass {
    pub keys: Arc<SigningKeys>,
    pub issuer: String,
    pub user_id: String,
    pub display_name: String,
    /// `recorder` or `camera` ([`confab_tickets::RECORDER_ROLE`], [`confab_tickets::CAMERA_ROLE`]).
    pub room_role: &'static str,
    pub room_id: String,
    pub recording_id: Option<String>,
}

impl Pass {
    /// A fresh single-use ticket, valid for the longest time tickets may live.
    pub(crate) fn ticket(&self) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti)?;
        Ok(self.keys.sign(&TicketClaims {
            iss: self.issuer.clone(),
            aud: TICKET_AUDIENCE.into(),
            sub: self.user_id.clone(),
            exp: now + MAX_TICKET_TTL_SECS,
            iat: now,
            jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
            room_id: self.room_id.clone(),
            display_name: self.display_name.clone(),
            room_role: self.room_role.into(),
            max_participants: 0,
            recording_id: self.recording_id.clone(),
        })?)
    }
}
