//! Builds the application: connections, shared state, routes and the HTTP server. `build`
//! binds the listener (port 0 picks a free port, for tests) and `run_until_stopped` serves
//! until SIGTERM/SIGINT, finishing in-flight requests first.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, get, web};
use confab_common::http;
use confab_common::tokens::SigningKeys;
use confab_storage::Storage;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::allowed_methods::AllowedMethods;
use crate::auth::hashing::PasswordHasher;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::tokens::AccessTokens;
use crate::control::ControlBus;
use crate::extractor_errors;
use crate::jobs::RecordingJobs;
use crate::openapi;
use crate::request_guard;
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;
use crate::web_client;
use crate::webhooks::delivery::DeliveryWorker;
use crate::webhooks::presence::PresenceEvents;

/// A Postgres pool that connects on first use, so the API starts (and reports not-ready)
/// while Postgres is down, and recovers by itself when it is back.
pub fn db_pool(settings: &Settings) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(&settings.database_url)?)
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let keys =
            SigningKeys::from_pem(&settings.jwt_keys_pem).map_err(|e| anyhow::anyhow!("CONFAB_JWT_KEY_FILE: {e}"))?;
        let redis = confab_common::redis::connect_lazy(&settings.redis_url)?;
        let storage = Storage::open(&settings.storage, &settings.recordings_dir)
            .map_err(|e| anyhow::anyhow!("recordings storage: {e}"))?;
        let camera_policy = settings.cameras.host_policy()?;
        let state = web::Data::new(AppState {
            db: db_pool(&settings)?,
            limiter: RateLimiter::new(redis.clone(), &settings.redis_prefix),
            control: ControlBus::new(redis.clone(), &settings.redis_prefix),
            recording_jobs: RecordingJobs::new(redis.clone(), &settings.redis_prefix),
            next_gateway: AtomicUsize::new(0),
            redis,
            hasher: PasswordHasher::new(settings.hash_workers, settings.hash_queue),
            access_tokens: AccessTokens::new(keys, &settings.jwt_issuer, settings.access_token_ttl),
            storage,
            camera_policy,
            settings,
        });
        spawn_webhook_workers(&state)?;
        let listener = TcpListener::bind(&state.settings.bind)?;
        let port = listener.local_addr()?.port();
        let metrics = web::Data::new(http::install_metrics());
        let server =
            HttpServer::new(move || app(state.clone(), metrics.clone())).listen(listener)?.shutdown_timeout(10).run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Webhook delivery and the reading of participant events run in every API instance; they
/// share the work through Postgres row locks and a Redis consumer group.
fn spawn_webhook_workers(state: &AppState) -> anyhow::Result<()> {
    let settings = &state.settings;
    tokio::spawn(Arc::new(DeliveryWorker::new(state.db.clone(), settings.webhooks.clone())?).run());
    let presence =
        PresenceEvents::new(state.db.clone(), state.redis.clone(), &settings.redis_url, &settings.redis_prefix)?;
    tokio::spawn(presence.run());
    Ok(())
}

fn app(
    state: web::Data<AppState>,
    metrics: web::Data<PrometheusHandle>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, mut openapi) = App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .service(routes::auth::signup)
        .service(routes::auth::login)
        .service(routes::auth::refresh)
        .service(routes::auth::logout)
        .service(routes::me::get_me)
        .service(routes::me::update_me)
        .service(routes::rooms::create_room)
        .service(routes::rooms::list_rooms)
        .service(routes::rooms::get_room)
        .service(routes::rooms::update_room)
        .service(routes::rooms::delete_room)
        .service(routes::members::list_members)
        .service(routes::members::add_member)
        .service(routes::members::update_member)
        .service(routes::members::remove_member)
        .service(routes::members::ban_user)
        .service(routes::members::list_bans)
        .service(routes::members::unban_user)
        .service(routes::cameras::create_camera)
        .service(routes::cameras::list_cameras)
        .service(routes::cameras::get_camera)
        .service(routes::cameras::update_camera)
        .service(routes::cameras::delete_camera)
        .service(routes::cameras::camera_status)
        .service(routes::invites::create_invite)
        .service(routes::invites::list_invites)
        .service(routes::invites::revoke_invite)
        .service(routes::invites::accept_invite)
        .service(routes::join::join_room)
        .service(routes::join::list_participants)
        .service(routes::speakers::grant_speaker)
        .service(routes::speakers::revoke_speaker)
        .service(routes::recordings::start_recording)
        .service(routes::recordings::stop_recording)
        .service(routes::recordings::list_recordings)
        .service(routes::recordings::get_recording)
        .service(routes::recordings::delete_recording)
        .service(routes::recordings::download_file)
        .service(routes::admin::users::list_users)
        .service(routes::admin::users::get_user)
        .service(routes::admin::users::update_user)
        .service(routes::admin::users::delete_user)
        .service(routes::admin::rooms::list_all_rooms)
        .service(routes::admin::rooms::delete_any_room)
        .service(routes::admin::rooms::room_participants)
        .service(routes::admin::rooms::kick_participant)
        .service(routes::admin::audit::audit_log)
        .service(routes::admin::audit::stats)
        .service(routes::admin::audit::list_recordings)
        .service(routes::admin::cameras::list_all_cameras)
        .service(routes::admin::sfus::list_sfus)
        .service(routes::admin::sfus::drain_sfu)
        .service(routes::admin::webhooks::create_webhook)
        .service(routes::admin::webhooks::list_webhooks)
        .service(routes::admin::webhooks::get_webhook)
        .service(routes::admin::webhooks::update_webhook)
        .service(routes::admin::webhooks::delete_webhook)
        .service(routes::admin::webhooks::list_deliveries)
        .service(routes::jwks::jwks)
        .service(routes::health::healthz)
        .service(routes::health::readyz)
        .service(routes::health::metrics)
        .service(openapi_json)
        .split_for_parts();
    openapi::complete(&mut openapi);
    let allowed_methods = web::Data::new(AllowedMethods::from_openapi(&openapi));
    let openapi = web::Data::new(openapi);
    let web_dir = state.settings.web_dir.clone();
    let body_deadline = state.settings.limits.body_read_timeout;
    let app = web_client::folders(&web_dir).fold(app, App::service);
    app.app_data(state)
        .app_data(metrics)
        .app_data(openapi)
        .app_data(allowed_methods)
        .app_data(extractor_errors::json_config())
        .app_data(extractor_errors::query_config())
        .app_data(extractor_errors::path_config())
        .app_data(web::Data::new(web_client::Index(web_dir.join("index.html"))))
        .default_service(web::to(web_client::fallback))
        .wrap(from_fn(move |req, next| request_guard::guard(body_deadline, req, next)))
        .wrap(web_client::headers())
        .wrap(from_fn(|req, next| http::observe(http::Service::Api, req, next)))
}

/// This document.
#[utoipa::path(tag = "ops", responses((status = 200, description = "The OpenAPI 3.1 description of the API")))]
#[get("/openapi.json")]
async fn openapi_json(doc: web::Data<utoipa::openapi::OpenApi>) -> HttpResponse {
    HttpResponse::Ok().json(doc.get_ref())
}
