//! The Janus target: Janus's VideoRoom plugin through Janus's REST API on localhost. One session;
//! a handle that creates the room (VP8, one publisher); the publisher's handle
//! `joinandconfigure`s with its offer; each subscriber gets a handle, `join`s the feed as a
//! subscriber (Janus offers), `start`s with its answer and asks for the top simulcast layer
//! (`configure`, substream 2). Requests are answered at once (`success`/`ack`), asynchronous
//! outcomes arrive on the session's long poll and are matched by transaction; a task keeps the
//! session alive.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, bail};
use awc::Client;
use serde_json::{Value, json};

use crate::reception::Reception;
use crate::webrtc::{Publisher, Subscriber};
use crate::{Run, Target};

/// Top of Janus's VP8 simulcast substreams (0 = q, 1 = h, 2 = f).
const TOP_SUBSTREAM: u8 = 2;
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long an asynchronous request may take to be answered.
const EVENT_WAIT: Duration = Duration::from_secs(60);

pub struct Janus {
    client: Client,
    /// `http://host:port/janus/<session>`.
    session_url: String,
    room: u64,
    feed: Option<u64>,
    transactions: u64,
}

impl Janus {
    /// Opens a session on the Janus at `url` (`http://127.0.0.1:8088/janus`) and creates a room.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = Client::builder().timeout(Duration::from_secs(60)).finish();
        let mut janus = Self { client, session_url: String::new(), room: 0, feed: None, transactions: 0 };
        let created = janus.post(url, json!({"janus": "create"})).await?;
        janus.session_url = format!("{url}/{}", id(&created)?);
        let handle = janus.attach().await?;
        janus.room = u64::from(std::process::id()) + 1_000_000;
        let room = json!({
            "request": "create", "room": janus.room, "publishers": 1, "videocodec": "vp8",
            "bitrate": 0, "fir_freq": 0, "permanent": false,
            "audiolevel_ext": false, "videoorient_ext": false, "playoutdelay_ext": false,
            "transport_wide_cc_ext": false,
        });
        let created = janus.message(handle, room, None).await?;
        plugin_data(&created).and_then(|data| data.get("room")).context("the room was not created")?;
        janus.keep_alive();
        Ok(janus)
    }

    fn keep_alive(&self) {
        let (client, url) = (self.client.clone(), self.session_url.clone());
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(KEEP_ALIVE).await;
                let request = json!({"janus": "keepalive", "transaction": "keepalive"});
                if let Err(e) = client.post(&url).send_json(&request).await {
                    eprintln!("sfu-load: Janus keep-alive failed: {e}");
                }
            }
        });
    }

    async fn post(&mut self, url: &str, mut request: Value) -> anyhow::Result<Value> {
        self.transactions += 1;
        request["transaction"] = json!(self.transactions.to_string());
        let mut response = self.client.post(url).send_json(&request).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let body: Value = response.json().limit(1 << 20).await?;
        if body["janus"] == "error" {
            bail!("Janus refused {request}: {}", body["error"]);
        }
        Ok(body)
    }

    async fn attach(&mut self) -> anyhow::Result<u64> {
        let url = self.session_url.clone();
        let attached = self.post(&url, json!({"janus": "attach", "plugin": "janus.plugin.videoroom"})).await?;
        id(&attached)
    }

    /// Sends a plugin message; for an asynchronous request (acknowledged), waits for its event.
    async fn message(&mut self, handle: u64, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let url = format!("{}/{handle}", self.session_url);
        let reply = self.post(&url, request).await?;
        let reply = if reply["janus"] == "ack" { self.event(&reply["transaction"]).await? } else { reply };
        if let Some(error) = plugin_data(&reply).and_then(|data| data.get("error")) {
            bail!("the VideoRoom refused {body}: {error}");
        }
        Ok(reply)
    }

    /// The event answering `transaction`, from the session's long poll; other events (media
    /// and WebRTC state notices of earlier handles) are passed over.
    async fn event(&mut self, transaction: &Value) -> anyhow::Result<Value> {
        let give_up = std::time::Instant::now() + EVENT_WAIT;
        while std::time::Instant::now() < give_up {
            let url = format!("{}?maxev=50", self.session_url);
            let mut response = self.client.get(&url).send().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let events: Value = response.json().limit(1 << 20).await?;
            let events = match events {
                Value::Array(events) => events,
                single => vec![single],
            };
            if let Some(event) = events.into_iter().find(|event| &event["transaction"] == transaction) {
                return Ok(event);
            }
        }
        bail!("no answer from Janus to transaction {transaction}")
    }
}

impl Target for Janus {
    async fn publish(&mut self, run: &Rc<Run>) -> anyhow::Result<()> {
        let (publisher, offer) = Publisher::offer(run.local_ip).await?;
        let handle = self.attach().await?;
        let join = json!({
            "request": "joinandconfigure", "room": self.room, "ptype": "publisher",
            "display": "sfu-load", "audio": false, "video": true,
        });
        // The offer lists the rids low to high (`simulcast::LAYERS`); Janus assumes high first.
        let jsep = json!({"type": "offer", "sdp": offer, "trickle": false, "rid_order": "lmh"});
        let joined = self.message(handle, join, Some(jsep)).await?;
        self.feed = Some(plugin_data(&joined).and_then(|data| data["id"].as_u64()).context("no feed id")?);
        let answer = joined["jsep"]["sdp"].as_str().context("Janus sent no answer")?;
        publisher.start(answer.to_owned(), Rc::clone(run))
    }

    async fn subscribe(&mut self, run: &Rc<Run>) -> anyhow::Result<Rc<RefCell<Reception>>> {
        let feed = self.feed.context("subscribing before publishing")?;
        let handle = self.attach().await?;
        let join = json!({"request": "join", "room": self.room, "ptype": "subscriber", "streams": [{"feed": feed}]});
        let attached = self.message(handle, join, None).await?;
        let offer = attached["jsep"]["sdp"].as_str().context("Janus sent no offer")?;
        let mid = offer.lines().find_map(|line| line.strip_prefix("a=mid:")).context("no mid")?.trim().to_owned();
        let (subscriber, answer) = Subscriber::answer(run.local_ip, offer.to_owned()).await?;
        self.message(
            handle,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer, "trickle": false})),
        )
        .await?;
        let top = json!({"request": "configure", "streams": [{"mid": mid, "substream": TOP_SUBSTREAM}]});
        self.message(handle, top, None).await?;
        Ok(subscriber.start(Rc::clone(run)))
    }
}

fn id(reply: &Value) -> anyhow::Result<u64> {
    reply["data"]["id"].as_u64().with_context(|| format!("no id in {reply}"))
}

fn plugin_data(reply: &Value) -> Option<&Value> {
    reply.get("plugindata").and_then(|plugin| plugin.get("data"))
}
