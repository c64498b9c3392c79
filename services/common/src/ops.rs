//! The operational surface of a service whose only dependency is Redis (gateway, recorder):
//! `/healthz`, `/readyz` and `/metrics` with request metrics, plus a JSON 404 for the rest.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use redis::aio::ConnectionManager;

use crate::http;

/// Registers the ops endpoints of a service that is ready when Redis answers; services add their
/// own routes beside them.
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_without_readiness(cfg);
    cfg.route("/readyz", web::get().to(readyz));
}

/// `/healthz` and `/metrics`, for a service that needs more than Redis to be ready and registers
/// its own `/readyz`.
pub fn configure_without_readiness(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(http::healthz)).route("/metrics", web::get().to(http::metrics));
}

async fn readyz(redis: web::Data<ConnectionManager>) -> HttpResponse {
    http::readiness(&[("redis", crate::redis::ping(&redis).await)])
}

/// A bound ops-only HTTP server; `port()` is known before it runs (tests bind port 0).
pub struct OpsServer {
    port: u16,
    server: Server,
}

impl OpsServer {
    /// Binds `bind`; request metrics are named after `service`.
    pub fn build(service: http::Service, bind: &str, redis_url: &str) -> anyhow::Result<Self> {
        let redis = web::Data::new(crate::redis::connect_lazy(redis_url)?);
        let metrics = web::Data::new(http::install_metrics());
        let listener = TcpListener::bind(bind)?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(redis.clone())
                .app_data(metrics.clone())
                .configure(configure)
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
