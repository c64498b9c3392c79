//! The operational surface of a service without an API of its own (recorder, camera ingest, SFU):
//! `/healthz`, `/readyz` and `/metrics` with request metrics, plus a JSON 404 for the rest. The
//! gateway shares `/healthz` and `/metrics` and checks its own readiness.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::http;

/// Registers `/healthz` and `/metrics`; services add `/readyz` and their own routes beside them.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(http::healthz)).route("/metrics", web::get().to(http::metrics));
}

/// What the service needs to do its work (the SFU has no database).
#[derive(Clone)]
struct Dependencies {
    postgres: Option<PgPool>,
    redis: ConnectionManager,
}

async fn readyz(dependencies: web::Data<Dependencies>) -> HttpResponse {
    let redis = ("redis", crate::redis::ping(&dependencies.redis).await);
    match &dependencies.postgres {
        Some(postgres) => http::readiness(&[("postgres", crate::postgres::ping(postgres).await), redis]),
        None => http::readiness(&[redis]),
    }
}

/// A bound ops-only HTTP server; `port()` is known before it runs (tests bind port 0).
pub struct OpsServer {
    port: u16,
    server: Server,
}

impl OpsServer {
    /// Binds `bind`; request metrics are named after `service`; ready while `postgres` (if the
    /// service has one) and the Redis at `redis_url` answer.
    pub fn build(
        service: http::Service,
        bind: &str,
        postgres: Option<PgPool>,
        redis_url: &str,
    ) -> anyhow::Result<Self> {
        let dependencies = web::Data::new(Dependencies { postgres, redis: crate::redis::connect_lazy(redis_url)? });
        let metrics = web::Data::new(http::install_metrics());
        let listener = TcpListener::bind(bind)?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(dependencies.clone())
                .app_data(metrics.clone())
                .configure(configure)
                .route("/readyz", web::get().to(readyz))
                .default_service(web::to(http::not_found))
                .wrap(from_fn(move |req, next| http::observe(service, req, next)))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
