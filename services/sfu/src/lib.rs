//! `confab-sfu`, the media server: a participant uploads each track once and the server forwards
//! it to everyone who should receive it (docs/architecture.md, docs/protocol.md "The media
//! server"). Its pure cores: [`forward`], the decisions a selective forwarding unit makes for every
//! packet, [`forwarder`], which routes a room's packets through them, [`room`], who may send media
//! and who receives it, [`speakers`], who is speaking, [`demux`], which connection a datagram on
//! the shared UDP port is for, and [`server`], every room's connections on webrtc-rs's sans-IO
//! stack. Around them: [`media_loop`] runs the server on its socket, its datagrams in batches
//! ([`udp_batch`]) and its timers looked for only when they may have moved ([`wake`]), [`seat`]
//! takes the SFU's seat in each room's call, [`jobs`] takes the rooms placed on this instance,
//! [`registry`] states the instance's capacity and load so rooms are placed by it (with
//! [`media_cpu`], how busy the media threads are), [`metrics`] reports.

pub mod climb;
pub mod connection;
pub mod demux;
pub mod forward;
pub mod forwarder;
pub mod jobs;
pub mod media_cpu;
pub mod media_loop;
pub mod metrics;
pub mod publish_cap;
pub mod registry;
pub mod room;
pub mod rtcp_delivery;
pub mod seat;
pub mod send_side;
pub mod server;
pub mod settings;
pub mod speakers;
pub mod udp_batch;
pub mod wake;

use std::sync::Arc;
use std::time::Duration;

use confab_call::Pass;
use confab_common::http::Service;
use confab_common::ops::OpsServer;
use confab_common::tokens::SigningKeys;
use confab_domain::CallRole;
pub use settings::Settings;
use tokio::sync::watch;

use crate::media_loop::Counters;
use crate::registry::Registry;
use crate::seat::Seats;

/// `address` with its port `offset` higher (0 stays 0: any port).
fn plus_port(mut address: std::net::SocketAddr, offset: u16) -> anyhow::Result<std::net::SocketAddr> {
    if address.port() != 0 {
        let port = address.port().checked_add(offset);
        address
            .set_port(port.ok_or_else(|| anyhow::anyhow!("media port {} + {offset} is past 65535", address.port()))?);
    }
    Ok(address)
}

/// How long rooms being served get to say goodbye at shutdown.
const LEAVE_WITHIN: Duration = Duration::from_secs(5);

/// A bound media server: its ops port, its media port, and the work it does once run.
pub struct Sfu {
    ops: OpsServer,
    media_ports: Vec<u16>,
    jobs: jobs::Jobs,
}

impl Sfu {
    /// Binds the ops and media ports and starts the media threads (so tests may bind port 0).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let ops = OpsServer::build(Service::Sfu, &settings.bind, None, &settings.redis_url)?;
        // Thread i binds the media port plus i and is reached at the advertised port plus i; a
        // port of 0 binds any port (tests), and is advertised as the one bound.
        let mut sockets = Vec::new();
        for offset in 0..settings.media_threads {
            let socket = std::net::UdpSocket::bind(plus_port(settings.media_bind, offset)?)?;
            udp_batch::enlarge_buffers(&socket)?;
            let mut advertised = plus_port(settings.media_address, offset)?;
            if advertised.port() == 0 {
                advertised.set_port(socket.local_addr()?.port());
            }
            sockets.push((socket, advertised));
        }
        let media_ports =
            sockets.iter().map(|(socket, _)| socket.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
        let media_addresses = sockets.iter().map(|(_, advertised)| advertised.to_string()).collect();
        let counters = Arc::new(Counters::default());
        let media = media_loop::start(sockets, Arc::clone(&counters))?;
        let redis = confab_common::redis::connect_lazy(&settings.redis_url)?;
        let registry = Registry::new(
            redis.clone(),
            &settings.redis_prefix,
            &settings.instance_id,
            media_addresses,
            settings.capacity,
            counters,
        );
        let pass = Pass {
            keys: Arc::new(SigningKeys::from_pem(&settings.jwt_keys_pem)?),
            issuer: settings.jwt_issuer.clone(),
            user_id: settings.instance_id.clone(),
            display_name: "Media server".to_owned(),
            role: CallRole::Sfu,
            room_id: String::new(),
            recording_id: None,
            room_settings: None,
        };
        let seats = Seats {
            pass,
            gateways: settings.gateway_urls.clone(),
            media,
            redis,
            prefix: settings.redis_prefix.clone(),
            instance_id: settings.instance_id.clone(),
            occupancy: registry.occupancy(),
        };
        let jobs = jobs::Jobs::new(seats, registry, &settings.redis_url)?;
        Ok(Self { ops, media_ports, jobs })
    }

    pub fn port(&self) -> u16 {
        self.ops.port()
    }

    /// Each media thread's UDP port (one with `CONFAB_MEDIA_THREADS=1`).
    pub fn media_ports(&self) -> &[u16] {
        &self.media_ports
    }

    /// Serves rooms until SIGTERM/SIGINT.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let jobs = tokio::spawn(self.jobs.run(stopped));
        let served = self.ops.run_until_stopped().await;
        let _ = stop.send(true);
        if tokio::time::timeout(LEAVE_WITHIN, jobs).await.is_err() {
            tracing::warn!("rooms were still being left when the time for it ran out");
        }
        served
    }

    /// Serves rooms until `stop` turns true or its sender is dropped (tests, which have no
    /// signals to stop by); the ops port is not served.
    /// Dropping the future stops everything at once, as a process's death would: its seats'
    /// connections close without a goodbye, and its heartbeat ends.
    pub async fn serve_until(self, mut stop: watch::Receiver<bool>) {
        let (stop_jobs, jobs_stopped) = watch::channel(false);
        let jobs = self.jobs.run(jobs_stopped);
        tokio::pin!(jobs);
        tokio::select! {
            () = &mut jobs => return,
            _ = stop.wait_for(|stop| *stop) => {}
        }
        let _ = stop_jobs.send(true);
        let _ = tokio::time::timeout(LEAVE_WITHIN, jobs).await;
    }
}
