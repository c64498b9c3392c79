//! `confab-gateway`: WebSocket signaling. Peers of a room find each other and exchange offers,
//! answers and ICE candidates, each message delivered only to the peer it names. Presence and
//! capacity live in Redis so several instances can serve one room (see docs/protocol.md).

pub mod connection;
pub mod fanout;
pub mod frames;
pub mod hub;
pub mod ice;
pub mod liveness;
pub mod presence;
pub mod publisher;
pub mod rooms;
pub mod seats;
pub mod session;
pub mod settings;
pub mod sfu_queue;
pub mod signal_rules;
pub mod subscriptions;
pub mod upgrade;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use confab_common::http;
use confab_tickets::{JwksCache, TicketVerifier};
use redis::aio::ConnectionManager;
pub use settings::Settings;
use tokio::sync::watch;

use crate::hub::Hub;
use crate::upgrade::Gateway;

/// How long connections get to close after SIGTERM before the server stops anyway.
const DRAIN: Duration = Duration::from_secs(5);

pub struct Application {
    port: u16,
    server: Server,
    hub: Arc<Hub>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl Application {
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let redis = confab_common::redis::connect_lazy(&settings.redis_url)?;
        let hub = Arc::new(Hub::new(
            redis.clone(),
            &settings.redis_prefix,
            &settings.instance_id,
            settings.limits.resume_window,
        ));
        let jwks = JwksCache::new(&settings.jwks_url, &settings.jwt_issuer, Duration::from_secs(10));
        let tickets = TicketVerifier::new(jwks, redis.clone(), &settings.redis_prefix);
        actix_web::rt::spawn(fanout::run(hub.clone(), redis::Client::open(settings.redis_url.as_str())?));
        actix_web::rt::spawn(liveness::run(hub.clone()));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let listener = TcpListener::bind(&settings.bind)?;
        let port = listener.local_addr()?.port();
        let gateway = web::Data::new(Gateway { settings, hub: hub.clone(), tickets, shutdown: shutdown_rx });
        // Fetched now, not at the first ticket: readiness waits for the keys.
        let warming = gateway.clone();
        actix_web::rt::spawn(async move { warming.tickets.keys().fetch_until_ready().await });
        let redis = web::Data::new(redis);
        let metrics = web::Data::new(http::install_metrics());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(gateway.clone())
                .app_data(redis.clone())
                .app_data(metrics.clone())
                .configure(confab_common::ops::configure)
                .route("/readyz", web::get().to(readyz))
                .route("/v1/signal", web::get().to(upgrade::signal))
                .default_service(web::to(http::not_found))
                .wrap(from_fn(|req, next| http::observe(http::Service::Gateway, req, next)))
        })
        .disable_signals()
        // Small frames go out at once: with Nagle's algorithm a frame written behind an
        // unacknowledged one waits for the peer's delayed ACK (up to 40 ms per hop).
        .tcp_nodelay(true)
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self { port, server, hub, shutdown: Arc::new(shutdown) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the same orderly shutdown as SIGTERM (for tests and embedding).
    pub fn stopper(&self) -> Arc<watch::Sender<bool>> {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM/SIGINT (or the stopper): then every socket is closed with 1012 so
    /// clients reconnect elsewhere, presence is cleared, and the process exits within 10 s.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let (hub, shutdown) = (self.hub, self.shutdown);
        actix_web::rt::spawn(async move {
            let mut stopped = shutdown.subscribe();
            tokio::select! {
                () = termination() => {}
                _ = stopped.changed() => {}
            }
            tracing::info!(connections = hub.connection_count(), "shutting down: closing every socket with 1012");
            let _ = shutdown.send(true);
            let deadline = Instant::now() + DRAIN;
            while hub.connection_count() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// Ready when it can admit peers: Redis answers (single-use tickets, presence) and the API's
/// signing keys have been fetched (tickets can be verified).
async fn readyz(gateway: web::Data<Gateway>, redis: web::Data<ConnectionManager>) -> HttpResponse {
    let keys = match gateway.tickets.keys().has_keys().await {
        true => Ok(()),
        false => Err("the API's signing keys have not been fetched yet".to_owned()),
    };
    http::readiness(&[("redis", confab_common::redis::ping(&redis).await), ("signing_keys", keys)])
}

async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
