//! Administering the media servers: every SFU instance in the registry with its capacity, load
//! and rooms, and draining one (it takes no new room) before it is stopped or to relieve it. Read
//! from and written to Redis (`confab_common::sfu_registry`), where the instances keep their
//! entries.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use confab_common::sfu_registry::{self, Instance};
use confab_domain::keys;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::admin::Admin;
use crate::error::ApiError;
use crate::routes::{ErrorResponse, audit};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct SfuList {
    /// The live instances (their heartbeat renewed within the last 5 s), by id.
    pub sfus: Vec<SfuView>,
}

/// One media server instance.
#[derive(Serialize, ToSchema)]
pub struct SfuView {
    /// Its instance id (`CONFAB_INSTANCE_ID`).
    pub id: String,
    /// The `ip:port` each of its media threads gives participants.
    pub media_addresses: Vec<String>,
    /// The subscribers it takes before it counts as full (`CONFAB_SFU_CAPACITY`).
    pub capacity: u64,
    /// It takes no new room: it is stopping, or an admin drained it.
    pub draining: bool,
    pub load: SfuLoad,
    /// The rooms placed on it: those it serves, and those waiting for it to take them.
    pub rooms: Vec<String>,
}

/// What an instance carried at its last heartbeat (once a second).
#[derive(Serialize, ToSchema)]
pub struct SfuLoad {
    /// People in the rooms it serves.
    pub subscribers: u64,
    /// Rooms it serves.
    pub rooms: u64,
    /// What it sends, in bits per second.
    pub forwarded_bits_per_second: u64,
    /// Its busiest media thread's share of one core, in percent.
    pub media_cpu_percent: u64,
}

impl From<Instance> for SfuView {
    fn from(instance: Instance) -> Self {
        let load = instance.load;
        Self {
            id: instance.id,
            media_addresses: instance.media_addresses,
            capacity: instance.capacity,
            draining: instance.draining,
            load: SfuLoad {
                subscribers: load.subscribers,
                rooms: load.rooms,
                forwarded_bits_per_second: load.forwarded_bits_per_second,
                media_cpu_percent: load.media_cpu_percent,
            },
            rooms: instance.rooms,
        }
    }
}

/// Every live media server instance with its load and the rooms placed on it. 503 when Redis
/// cannot be read.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = SfuList), (status = 403, body = ErrorResponse), (status = 503, body = ErrorResponse),
))]
#[get("/v1/admin/sfus")]
pub async fn list_sfus(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let instances = sfu_registry::instances(&mut state.redis.clone(), &state.settings.redis_prefix).await?;
    Ok(HttpResponse::Ok().json(SfuList { sfus: instances.into_iter().map(SfuView::from).collect() }))
}

/// Drain a media server instance: no new room is placed on it; the rooms it serves stay until
/// their calls end or it is stopped (SIGTERM), which hands them to other instances. The mark
/// lasts until the instance's process ends. 404 for an id no live instance has.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
    (status = 503, body = ErrorResponse),
))]
#[post("/v1/admin/sfus/{id}/drain")]
pub async fn drain_sfu(
    req: HttpRequest,
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let instance_id = path.into_inner();
    if !keys::is_instance_id(&instance_id) {
        return Err(ApiError::NotFound);
    }
    // Audited in the transaction that commits only once the mark is set.
    let mut tx = state.db.begin().await?;
    let details = serde_json::json!({"instance_id": instance_id});
    audit(&mut tx, &req, admin.id, "sfu.drain", None, None, details).await?;
    if !sfu_registry::mark_draining(&mut state.redis.clone(), &state.settings.redis_prefix, &instance_id).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
