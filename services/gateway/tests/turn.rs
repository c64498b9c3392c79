//! The TURN credentials in `welcome` against a real coturn: `turnserver` runs from the committed
//! deploy/coturn/turnserver.conf (overridden only where a test on loopback must differ), and
//! coturn's own client, `turnutils_uclient`, allocates relays with what the gateway handed out.
//! Fresh credentials relay data; expired ones and ones signed with another secret are refused;
//! the relay reaches public peers but not the private and loopback ranges the config denies.
//!
//! Needs Debian's `coturn` package (deploy/local/test installs it).

use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use confab_gateway::Settings;
use confab_gateway::ice::IceConfig;
use confab_protocol::signal::IceServer;
use confab_testkit::{Signaling, TestKeys, eventually, gateway_settings, start_gateway};

mod support;

const COTURN_MISSING: &str = "is not on PATH: install Debian's coturn package (apt-get install coturn), \
     which deploy/local/test does";

/// A private scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("confab-turn-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `turnserver` on 127.0.0.1, killed when dropped.
struct Coturn {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Coturn {
    fn start(dir: &Path, secret: &str) -> Self {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/coturn/turnserver.conf");
        assert!(config.is_file(), "{} is missing", config.display());
        let port = free_port();
        let log = dir.join("turnserver.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("turnserver")
            .arg("-c")
            .arg(&config)
            .args([
                format!("--listening-port={port}"),
                "--listening-ip=127.0.0.1".into(),
                "--relay-ip=127.0.0.1".into(),
                format!("--static-auth-secret={secret}"),
                // The config denies loopback peers (the SSRF guard); here both clients and
                // their relays live on 127.0.0.1, so exactly that address is let back in.
                "--allow-loopback-peers".into(),
                "--allowed-peer-ip=127.0.0.1".into(),
                format!("--pidfile={}", dir.join("turnserver.pid").display()),
                format!("--userdb={}", dir.join("turndb").display()),
            ])
            .stdin(Stdio::null())
            // The config logs to stdout; both streams go to a file shown when a check fails.
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run turnserver ({e}); it {COTURN_MISSING}"));
        let mut coturn = Self { port, child, log };
        coturn.wait_until_answering();
        coturn
    }

    /// Waits until a STUN Binding request over UDP gets its response: then the listeners and
    /// relay threads are up.
    fn wait_until_answering(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let transaction: [u8; 12] = *uuid::Uuid::new_v4().as_bytes().first_chunk().unwrap();
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&transaction);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("turnserver exited ({status}) at start-up:\n{}", self.log_text());
            }
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            let mut response = [0u8; 512];
            if let Ok(n) = socket.recv(&mut response)
                && n >= 20
                && response[..2] == [0x01, 0x01]
                && response[8..20] == transaction
            {
                return;
            }
        }
        panic!("turnserver did not answer STUN on 127.0.0.1:{} within 10 s:\n{}", self.port, self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether coturn has logged that it refused `username` for lack of valid credentials,
    /// which it does before answering 401.
    fn refused_credentials_of(&self, username: &str) -> bool {
        self.log_text().contains(&format!("Cannot find credentials of user <{username}>"))
    }

    /// Waits for coturn to log that it refused `username`: the line may come just after the 401.
    async fn logged_refusing(&self, username: &str) {
        let what = format!("coturn logs refusing {username}; its log so far:\n{}", self.log_text());
        eventually(&what, Duration::from_secs(1), || {
            std::future::ready(self.refused_credentials_of(username).then_some(()))
        })
        .await;
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both).
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What one `turnutils_uclient` run printed and how it ended.
struct Attempt {
    status: ExitStatus,
    output: String,
}

impl Attempt {
    /// Messages that made it through the relays, from uclient's final summary line
    /// (`start_mclient: tot_send_msgs=2, tot_recv_msgs=2`).
    fn relayed_messages(&self) -> Option<u64> {
        let summary = self.output.lines().find(|l| l.contains("start_mclient: tot_send_msgs="))?;
        summary.split("tot_recv_msgs=").nth(1)?.trim().parse().ok()
    }

    /// uclient's verdict when every Allocate is answered with an error: it retries after
    /// each 401 challenge, then gives up with this line and exit status 255.
    fn refused(&self) -> bool {
        !self.status.success() && self.output.contains("Cannot complete Allocation")
    }

    /// uclient's verdict when the relay was allocated but binding a channel to the peer was
    /// answered 403; it then exits with status 255 too.
    fn peer_forbidden(&self) -> bool {
        !self.status.success() && self.output.contains("error 403 (Forbidden IP)")
    }
}

/// Runs `turnutils_uclient` against the TURN URL `url` with the given long-term credentials and
/// `mode`: [`RELAY_BETWEEN_TWO_CLIENTS`] or [`bind_to_peer`].
async fn uclient(dir: &Path, url: &str, username: &str, password: &str, mode: &[&str]) -> Attempt {
    let (host, port) = turn_host_port(url);
    let out_path = dir.join(format!("uclient-{}.log", uuid::Uuid::new_v4().simple()));
    let out = File::create(&out_path).unwrap();
    let mut child = Command::new("turnutils_uclient")
        .args(mode)
        .args(["-c", "-p", &port.to_string(), "-u", username, "-w", password, &host])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run turnutils_uclient ({e}); it {COTURN_MISSING}"));
    // Polled against a deadline rather than awaited: one that overruns is killed and its output
    // shown.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("turnutils_uclient ran for 20 s:\n{}", std::fs::read_to_string(&out_path).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Attempt { status, output: std::fs::read_to_string(&out_path).unwrap() }
}

/// Two clients each allocate a UDP relay and send one message to the other's relay: success
/// means two allocations, permissions, and data through the relay.
const RELAY_BETWEEN_TWO_CLIENTS: &[&str] = &["-y", "-n", "1"];

/// One client allocates a relay and binds a channel to `peer` (port 3480), sending nothing: the
/// server's peer address policy decides.
fn bind_to_peer(peer: &str) -> [&str; 4] {
    ["-n", "0", "-e", peer]
}

/// `turn:127.0.0.1:3478?transport=udp` → ("127.0.0.1", 3478).
fn turn_host_port(url: &str) -> (String, u16) {
    let authority = url.strip_prefix("turn:").unwrap().split('?').next().unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

/// One gateway on a free port with the given TURN settings; its WebSocket URL.
fn gateway(jwks_url: &str, redis_prefix: &str, ice: IceConfig) -> String {
    let instance_id = format!("gw-turn-{}", uuid::Uuid::new_v4().simple());
    let defaults = gateway_settings(redis_prefix, jwks_url, &instance_id);
    start_gateway(Settings { ice, ..defaults }).url
}

/// Joins a fresh room through `gateway` with a ticket, as a browser does, and returns the TURN
/// entry of the `welcome`.
async fn turn_from_welcome(keys: &TestKeys, gateway: &str) -> IceServer {
    let room = uuid::Uuid::new_v4().to_string();
    let (_, welcome) = Signaling::join(gateway, &keys.ticket(&room, "Ann", "member", None)).await;
    let turn = welcome.ice_servers.iter().find(|s| s.urls.first().is_some_and(|u| u.starts_with("turn:")));
    turn.unwrap_or_else(|| panic!("no TURN server in {:?}", welcome.ice_servers)).clone()
}

/// The unix time a TURN REST API username (`expiry:user_id`) is valid until.
fn expiry_of(username: &str) -> i64 {
    username.split(':').next().unwrap().parse().unwrap()
}

#[actix_web::test]
async fn coturn_relays_with_welcome_credentials_and_refuses_expired_or_wrongly_signed_ones() {
    let dir = TempDir::new();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let coturn = Coturn::start(&dir.0, &secret);
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let ice = |ttl_secs| IceConfig {
        stun_urls: vec![],
        turn_urls: vec![turn_url.clone()],
        turn_secret: Some(secret.clone()),
        turn_ttl_secs: ttl_secs,
    };
    let keys = TestKeys::default();
    let jwks = confab_testkit::jwks_server(&keys.keys);
    let prefix = confab_testkit::redis_prefix();
    // The second gateway's TTL is below what CONFAB_TURN_TTL_SECS accepts (60 s): settings
    // built in code let the test see its credentials expire without waiting a minute.
    let normal = gateway(&jwks, &prefix, ice(600));
    let short_lived = gateway(&jwks, &prefix, ice(1));

    let fresh = turn_from_welcome(&keys, &normal).await;
    let expiring = turn_from_welcome(&keys, &short_lived).await;
    assert_eq!(fresh.urls, std::slice::from_ref(&turn_url));

    let accepted = uclient(&dir.0, &fresh.urls[0], &fresh.username, &fresh.credential, RELAY_BETWEEN_TWO_CLIENTS).await;
    assert!(
        accepted.status.success() && accepted.relayed_messages().is_some_and(|n| n > 0),
        "coturn should relay with the welcome credentials ({}):\n{}\n--- turnserver log ---\n{}",
        accepted.status,
        accepted.output,
        coturn.log_text()
    );
    assert!(!coturn.refused_credentials_of(&fresh.username), "{}", coturn.log_text());

    // coturn accepts a username while its expiry is not in the past: at most 2 s after it was
    // issued with its 1 s to live.
    eventually("the short-lived credentials expire", Duration::from_secs(3), || {
        std::future::ready((chrono::Utc::now().timestamp() > expiry_of(&expiring.username)).then_some(()))
    })
    .await;
    let expired =
        uclient(&dir.0, &expiring.urls[0], &expiring.username, &expiring.credential, RELAY_BETWEEN_TWO_CLIENTS).await;
    assert!(expired.refused(), "expired credentials were not refused ({}):\n{}", expired.status, expired.output);
    coturn.logged_refusing(&expiring.username).await;

    // The same, still valid username with a credential from a gateway holding another secret.
    let other_secret = IceConfig { turn_secret: Some("not-the-coturn-secret".into()), ..ice(600) };
    let (_, user_id) = fresh.username.split_once(':').unwrap();
    let forged = other_secret.servers_for(user_id, expiry_of(&fresh.username) - 600);
    assert_eq!(forged[0].username, fresh.username, "same username, different credential");
    let wrong = uclient(&dir.0, &turn_url, &forged[0].username, &forged[0].credential, RELAY_BETWEEN_TWO_CLIENTS).await;
    assert!(
        wrong.refused(),
        "a credential signed with another secret was accepted ({}):\n{}",
        wrong.status,
        wrong.output
    );
    coturn.logged_refusing(&fresh.username).await;
}

#[actix_web::test]
async fn the_relay_reaches_public_peers_but_not_private_or_loopback_ones() {
    let dir = TempDir::new();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let coturn = Coturn::start(&dir.0, &secret);
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let ice = IceConfig {
        turn_urls: vec![turn_url.clone()],
        turn_secret: Some(secret),
        turn_ttl_secs: 600,
        ..Default::default()
    };
    let turn = ice.servers_for("peer-policy", chrono::Utc::now().timestamp()).remove(0);

    // A public address (nothing is sent to it): the denied ranges must not catch it, as a range
    // starting at "::" would.
    let public = uclient(&dir.0, &turn_url, &turn.username, &turn.credential, &bind_to_peer("8.8.8.8")).await;
    assert!(
        public.status.success(),
        "a public peer was refused ({}):\n{}\n{}",
        public.status,
        public.output,
        coturn.log_text()
    );

    // 127.0.0.1 is let back in for the other test; the rest of 127/8 still meets the denied
    // ranges (coturn's own loopback check is off in these tests).
    for (peer, range) in [
        ("10.0.0.1", "10.0.0.0-10.255.255.255"),
        ("100.64.0.1", "100.64.0.0-100.127.255.255"),
        ("127.0.0.2", "127.0.0.0-127.255.255.255"),
        ("169.254.169.254", "169.254.0.0-169.254.255.255"),
        ("172.16.0.1", "172.16.0.0-172.31.255.255"),
        ("192.168.1.1", "192.168.0.0-192.168.255.255"),
    ] {
        let attempt = uclient(&dir.0, &turn_url, &turn.username, &turn.credential, &bind_to_peer(peer)).await;
        assert!(attempt.peer_forbidden(), "{peer} was not refused ({}):\n{}", attempt.status, attempt.output);
        let line = format!("A peer IP {peer} denied in the range: {range}");
        assert!(coturn.log_text().contains(&line), "coturn did not log {line:?}:\n{}", coturn.log_text());
    }
}
