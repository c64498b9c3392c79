//! A Redis restart in the middle of a call: gateways reconnect, resubscribe, put their peers
//! back into presence with their heartbeats, resync them once the whole room is back, and
//! cross-instance signaling works again; nobody is taken for dead. Uses a Redis server of its
//! own so the restart touches no other test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use confab_gateway::Settings;
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{SessionDescription, Signal};
use confab_testkit::{Kind, Signaling, TestKeys, eventually, gateway_settings, start_gateway};

mod support;

use support::{PATIENCE, heard_within};

/// A private redis-server, killed when dropped.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by deploy/local");
        let redis = Self { port, child };
        eventually("the private redis-server accepts connections", PATIENCE, || {
            std::future::ready(std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop))
        })
        .await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn start_again(&mut self) {
        *self = Self::start(self.port).await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[actix_web::test]
async fn a_redis_restart_mid_call_neither_splits_the_call_nor_resyncs_anyone_with_a_partial_room() {
    let mut redis = PrivateRedis::start(free_port()).await;
    let keys = TestKeys::default();
    let jwks_url = confab_testkit::jwks_server(&keys.keys);
    let gateways: Vec<String> = (0..2)
        .map(|index| {
            start_gateway(Settings {
                redis_url: redis.url(),
                ..gateway_settings("confab", &jwks_url, &format!("gw-restart-{index}"))
            })
            .url
        })
        .collect();
    let room = uuid::Uuid::new_v4().to_string();
    let join = async |gateway: usize, name: &str| {
        let (signaling, welcome) = Signaling::join(&gateways[gateway], &keys.ticket(&room, name, "member", None)).await;
        (signaling, welcome.peer_id)
    };
    let (mut ann, ann_id) = join(0, "Ann").await;
    let (mut bob, bob_id) = join(1, "Bob").await;
    ann.recv().await;

    redis.stop();
    // The outage itself: long enough for every gateway to notice it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.start_again().await;

    // Past the heartbeat TTL and a sweep: long enough for a gateway to take the other's live
    // peers for dead, as it once did.
    let watch = Duration::from_secs(14);
    let (ann_heard, bob_heard) = tokio::join!(heard_within(&mut ann, watch), heard_within(&mut bob, watch));
    for (heard, other) in [(&ann_heard, &bob_id), (&bob_heard, &ann_id)] {
        let resyncs: Vec<&Vec<_>> = heard
            .iter()
            .filter_map(|m| match m {
                Kind::Resync(resync) => Some(&resync.peers),
                _ => None,
            })
            .collect();
        assert!(!resyncs.is_empty(), "a resync after the outage: {heard:?}");
        for peers in resyncs {
            let peers: Vec<&str> = peers.iter().map(|p| p.peer_id.as_str()).collect();
            assert_eq!(peers, [other.as_str()], "every resync lists the whole room");
        }
        let coming_or_going = |m: &Kind| matches!(m, Kind::PeerLeft(_) | Kind::PeerJoined(_));
        assert!(!heard.iter().any(coming_or_going), "{heard:?}");
    }
    let offer = Payload::Sdp(SessionDescription { r#type: "offer".into(), sdp: "v=0 after restart".into() });
    ann.signal(&bob_id, offer.clone()).await;
    let from_ann = Kind::Signal(Signal { from: ann_id.clone(), payload: Some(offer.clone()), ..Signal::default() });
    assert_eq!(bob.recv().await, from_ann);
    bob.signal(&ann_id, offer.clone()).await;
    assert_eq!(ann.recv().await, Kind::Signal(Signal { from: bob_id, payload: Some(offer), ..Signal::default() }));
}
