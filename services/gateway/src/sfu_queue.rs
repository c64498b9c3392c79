//! When a call needs the media server, the gateway that admits the participant who makes it so
//! asks for one: a room whose participants' tickets say `media: sfu`, or `auto` once it has three
//! people, and that has no SFU seat, is placed on the least-loaded live SFU instance by
//! `confab_common::sfu_jobs` (once: the placement itself refuses a room already placed or
//! served). The gateway never waits for an SFU: the call carries on as a mesh until the SFU's
//! seat arrives and the room is told `media_changed`; with no live SFU it stays a mesh and the
//! next arrival tries again.

use confab_common::sfu_jobs::{self, Placement};
use confab_domain::presence::{self, PeerPresence};
use confab_domain::{CallRole, MediaRouting, RoomMode};
use redis::aio::ConnectionManager;

use crate::seats;

/// In an `auto` room, the call moves to the media server from this many people on.
pub const AUTO_SFU_FROM: usize = 3;

/// A room's media settings, as a participant's ticket carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomMedia {
    pub media: MediaRouting,
    pub mode: RoomMode,
}

/// Whether a room with these settings and `present` in it needs an SFU that it does not have.
pub fn needs_sfu(media: MediaRouting, present: &[PeerPresence]) -> bool {
    if present.iter().any(|p| seats::role_of(p) == CallRole::Sfu) {
        return false;
    }
    match media {
        MediaRouting::Mesh => false,
        MediaRouting::Sfu => true,
        MediaRouting::Auto => present.iter().filter(|p| presence::is_person(p)).count() >= AUTO_SFU_FROM,
    }
}

pub struct SfuQueue {
    redis: ConnectionManager,
    prefix: String,
}

impl SfuQueue {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned() }
    }

    /// Places the room on an SFU if, with `present` just after a participant's arrival, it needs
    /// one. A failure is logged and the call goes on as a mesh; the next arrival tries again.
    pub async fn after_arrival(&self, room_id: &str, settings: RoomMedia, present: &[PeerPresence]) {
        if !needs_sfu(settings.media, present) {
            return;
        }
        let placed =
            sfu_jobs::place(&mut self.redis.clone(), &self.prefix, room_id, settings.media, settings.mode).await;
        match placed {
            Ok(Placement::Placed { instance_id }) => {
                metrics::counter!("gateway_sfu_jobs_queued_total").increment(1);
                tracing::info!(room.id = %room_id, media = %settings.media, mode = %settings.mode, sfu.id = %instance_id, "room placed on an SFU");
            }
            Ok(Placement::Held) => {}
            Ok(Placement::NoInstance) => {
                metrics::counter!("gateway_sfu_unplaced_total").increment(1);
                tracing::info!(room.id = %room_id, "no SFU takes rooms: the call stays a mesh for now");
            }
            Err(e) => {
                metrics::counter!("gateway_redis_errors_total").increment(1);
                tracing::warn!(room.id = %room_id, error = %e, "could not place the room on an SFU");
            }
        }
    }

    /// The seat of the SFU `dead_instance` dropped out of the room's call (the instance died):
    /// if the room, with `present` left in it, still needs an SFU, it goes to another live
    /// instance at once. Whether another instance will serve it (placed now, or held by another
    /// already); not if no instance is live, the room no longer needs one, or Redis failed: the
    /// call then falls back to a mesh.
    pub async fn after_failure(
        &self,
        room_id: &str,
        settings: RoomMedia,
        present: &[PeerPresence],
        dead_instance: &str,
    ) -> bool {
        if !needs_sfu(settings.media, present) {
            return false;
        }
        let (media, mode) = (settings.media, settings.mode);
        let failed_over =
            sfu_jobs::fail_over(&mut self.redis.clone(), &self.prefix, room_id, media, mode, dead_instance).await;
        match failed_over {
            Ok(Placement::Placed { instance_id }) => {
                metrics::counter!("gateway_sfu_failovers_total").increment(1);
                tracing::warn!(room.id = %room_id, sfu.dead = %dead_instance, sfu.id = %instance_id, "the room's SFU dropped out; placed on another");
                true
            }
            Ok(Placement::Held) => true,
            Ok(Placement::NoInstance) => {
                metrics::counter!("gateway_sfu_unplaced_total").increment(1);
                tracing::warn!(room.id = %room_id, sfu.dead = %dead_instance, "the room's SFU dropped out and no other takes rooms: back to mesh");
                false
            }
            Err(e) => {
                metrics::counter!("gateway_redis_errors_total").increment(1);
                tracing::warn!(room.id = %room_id, error = %e, "could not fail the room over to another SFU");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(roles: &[&str]) -> Vec<PeerPresence> {
        roles
            .iter()
            .enumerate()
            .map(|(i, role)| PeerPresence { peer_id: format!("p{i}"), role: (*role).into(), ..Default::default() })
            .collect()
    }

    #[test]
    fn an_sfu_room_needs_one_from_its_first_participant_until_one_is_there() {
        assert!(needs_sfu(MediaRouting::Sfu, &present(&["member"])));
        assert!(!needs_sfu(MediaRouting::Sfu, &present(&["member", "sfu"])));
    }

    #[test]
    fn an_auto_room_needs_one_from_its_third_person_not_counting_services() {
        assert!(!needs_sfu(MediaRouting::Auto, &present(&["owner", "member"])));
        assert!(!needs_sfu(MediaRouting::Auto, &present(&["owner", "member", "recorder", "camera"])));
        assert!(needs_sfu(MediaRouting::Auto, &present(&["owner", "member", "moderator"])));
        assert!(!needs_sfu(MediaRouting::Auto, &present(&["owner", "member", "moderator", "sfu"])));
    }

    #[test]
    fn a_mesh_room_never_does() {
        assert!(!needs_sfu(MediaRouting::Mesh, &present(&["member"; 8])));
    }
}
