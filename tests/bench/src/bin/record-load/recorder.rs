//! The recorder step: participants through the API and a gateway, each sending to the
//! recorder over its own send-only WebRTC connection, or publishing once to the SFU, which
//! forwards everyone to the recorder on one connection per room.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use confab_bench::rss_kib;
use confab_bench::signaling::{client_text, read, welcome_peer_id};
use confab_call::{IceCandidate, MediaSection, rtc_candidate};
use confab_protocol::signal::server_message::Kind;
use confab_protocol::signal::signal::Payload;
use confab_protocol::signal::{Bye, Ping, Signal, client_message};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rtc::media::Sample;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use crate::api::{Api, Fixture, metrics_delta, scrape_metrics};
use crate::clip::{Clip, count_frames};
use crate::measure::{Step, measure_window};
use crate::pacing::{Pacing, Schedule, Sent};
use confab_call::{opus, vp8};

use crate::peer::{SenderPeer, sender_peer};
use crate::{Args, DRAIN, unix_ms};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a participant waits for `recording_started`, and then for its connection.
const SIGNALING_TIMEOUT: Duration = Duration::from_secs(60);

/// How participants' media reaches the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Each participant offers the recorder its own connection (a mesh room).
    Direct,
    /// Each participant publishes to the SFU, which sends the recorder everyone (an `sfu` room).
    ThroughSfu,
}

impl Route {
    /// The step's name in the tables and `result` lines.
    pub fn target(self) -> &'static str {
        match self {
            Route::Direct => "recorder",
            Route::ThroughSfu => "recorder-through-sfu",
        }
    }

    /// The rooms' `media` setting. Rooms of up to 50 cannot be `mesh` (at most 8): direct steps
    /// take `auto`, and run while no SFU does, so their calls stay peer to peer.
    pub fn media(self) -> &'static str {
        match self {
            Route::Direct => "auto",
            Route::ThroughSfu => "sfu",
        }
    }

    /// The `connection` of the participant's signals (docs/protocol.md): none to the recorder.
    fn connection(self) -> &'static str {
        match self {
            Route::Direct => "",
            Route::ThroughSfu => "publish",
        }
    }
}

pub async fn record_step(
    args: &Args,
    api: &Api,
    fixture: &Fixture,
    clip: &Arc<Clip>,
    n: usize,
    pid: u32,
    route: Route,
) -> anyhow::Result<Step> {
    let rss_before = rss_kib(pid).context("the recorder is not running")?;
    let metrics_before = scrape_metrics(args.recorder_metrics.as_deref()).await;
    let rooms = n.div_ceil(fixture.room_size);

    // Everyone joins the call, then each room's owner starts its recording.
    let joining = futures_util::stream::iter(0..n)
        .map(|i| async move { join(api, &fixture.tokens[i], &fixture.rooms[i / fixture.room_size]).await })
        .buffered(16);
    let joined: Vec<Joined> = joining.collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
    let mut recordings = Vec::new();
    for room in 0..rooms {
        let owner = &fixture.tokens[room * fixture.room_size];
        let path = format!("/v1/rooms/{}/recordings", fixture.rooms[room]);
        let recording = api.call("start a recording", "POST", &path, Some(owner.as_str()), None).await?;
        recordings.push(recording["id"].as_str().context("a recording without id")?.to_owned());
    }

    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let (leave_tx, leave) = watch::channel(false);
    let mut plans = Vec::new();
    let mut participants = Vec::new();
    for (index, joined) in joined.into_iter().enumerate() {
        let sent = Arc::new(Sent::default());
        let (plan_tx, plan_rx) = watch::channel(None);
        plans.push(plan_tx);
        let ready = ready_tx.clone();
        let peer_id = joined.peer_id.clone();
        let task = tokio::spawn(participant(
            index,
            joined,
            route,
            Arc::clone(clip),
            Arc::clone(&sent),
            ready,
            plan_rx,
            leave.clone(),
        ));
        participants.push((peer_id, sent, task));
    }

    let mut connected = 0;
    let mut failures = Vec::new();
    let deadline = Instant::now() + SIGNALING_TIMEOUT + Duration::from_secs(10);
    while connected + failures.len() < n {
        match tokio::time::timeout_at(deadline, ready.recv()).await {
            Ok(Some((_, Ok(())))) => connected += 1,
            Ok(Some((index, Err(e)))) => failures.push(format!("participant {index}: {e:#}")),
            Ok(None) | Err(_) => break,
        }
    }
    let mut notes = Vec::new();
    if connected < n {
        notes.push(format!("only {connected} of {n} participants connected to the {}", route.target()));
        notes.extend(failures.iter().take(5).cloned());
    }

    if route == Route::ThroughSfu {
        // The SFU learns a track at its first packet and only then offers it to the recorder, whose
        // capture starts a second later: the window's frames go out once every capture runs.
        captures_running(args, connected).await.unwrap_or_else(|why| notes.push(why));
    }
    let schedule = Schedule::new(args, clip);
    for (index, plan) in plans.iter().enumerate() {
        let _ = plan.send(Some(schedule.pacing(clip, index, n)));
    }
    let measured = measure_window(&[pid], &schedule).await;
    let metrics_window = scrape_metrics(args.recorder_metrics.as_deref()).await;
    tokio::time::sleep(DRAIN).await;

    for (room, recording) in recordings.iter().enumerate() {
        let owner = &fixture.tokens[room * fixture.room_size];
        api.call("stop a recording", "POST", &format!("/v1/recordings/{recording}/stop"), Some(owner.as_str()), None)
            .await?;
    }
    let mut views = Vec::new();
    for (room, recording) in recordings.iter().enumerate() {
        let owner = &fixture.tokens[room * fixture.room_size];
        views.push(finished_recording(api, owner, recording).await?);
    }
    let _ = leave_tx.send(true);
    for (_, _, task) in &mut participants {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    while let Ok((index, result)) = ready.try_recv() {
        if let Err(e) = result {
            notes.push(format!("participant {index} after connecting: {e:#}"));
        }
    }

    let mut step = Step::new(n, rooms, 1, rss_before, &measured);
    step.notes.extend(notes);
    let files = download_and_count(api, fixture, &views, &mut step.notes).await?;
    for (peer_id, sent, _) in &participants {
        let (video, audio) =
            files.iter().filter(|(peer, _)| peer == peer_id).fold((0, 0), |(v, a), (_, (fv, fa))| (v + fv, a + fa));
        step.add(sent, video, audio);
    }
    for (room, recording) in recordings.iter().enumerate() {
        let owner = &fixture.tokens[room * fixture.room_size];
        let _ = api.request("DELETE", &format!("/v1/recordings/{recording}"), Some(owner.as_str()), None).await;
    }
    let metrics_after = scrape_metrics(args.recorder_metrics.as_deref()).await;
    if !metrics_after.is_empty() {
        step.notes.push(format!("recorder metrics in the window: {}", metrics_delta(&metrics_before, &metrics_window)));
        step.notes.push(format!("recorder metrics over the step: {}", metrics_delta(&metrics_before, &metrics_after)));
    }
    Ok(step)
}

/// Downloads every file of the finished recordings and counts its frames: (peer id, (video,
/// audio)) per file. What the recordings say of themselves goes to `notes`.
async fn download_and_count(
    api: &Api,
    fixture: &Fixture,
    views: &[Value],
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<(String, (u64, u64))>> {
    let mut files = Vec::new();
    let (mut packets_lost, mut keyframe_requests) = (0, 0);
    for (room, view) in views.iter().enumerate() {
        let owner = &fixture.tokens[room * fixture.room_size];
        let recording = view["id"].as_str().unwrap_or_default();
        let status = view["status"].as_str().unwrap_or_default();
        if status != "ready" {
            notes.push(format!("recording of room {room}: {status} ({})", view["reason"]));
        }
        for file in view["files"].as_array().into_iter().flatten() {
            let file_id = file["id"].as_str().unwrap_or_default();
            let path = format!("/v1/recordings/{recording}/files/{file_id}");
            let (code, bytes) = api.request("GET", &path, Some(owner.as_str()), None).await?;
            if code != 200 {
                notes.push(format!("a file of room {room} could not be downloaded: HTTP {code}"));
                continue;
            }
            match count_frames(Cursor::new(bytes)) {
                Ok(counts) => files.push((file["peer_id"].as_str().unwrap_or_default().to_owned(), counts)),
                Err(e) => notes.push(format!("a file of room {room} could not be read: {e:#}")),
            }
        }
        packets_lost += view["stats"]["packets_lost"].as_i64().unwrap_or_default();
        keyframe_requests += view["stats"]["keyframe_requests"].as_i64().unwrap_or_default();
    }
    notes.push(format!(
        "the recordings' own stats: {packets_lost} RTP packets lost, {keyframe_requests} keyframe requests sent"
    ));
    Ok(files)
}

/// Polls a stopped recording until the recorder has finished it; its view.
pub async fn finished_recording(api: &Api, token: &str, recording: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view =
            api.call("read a recording", "GET", &format!("/v1/recordings/{recording}"), Some(token), None).await?;
        if matches!(view["status"].as_str(), Some("ready" | "partial" | "failed")) {
            return Ok(view);
        }
        if Instant::now() > deadline {
            bail!("recording {recording} still {} two minutes after its stop", view["status"]);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A participant in the call: its WebSocket after the welcome, its peer id, and the SFU's if
/// the welcome named one.
pub struct Joined {
    socket: Socket,
    peer_id: String,
    sfu: Option<String>,
}

/// Joins `room_id`'s call.
pub async fn join(api: &Api, token: &str, room_id: &str) -> anyhow::Result<Joined> {
    let ticket = api.call("get a join ticket", "POST", &format!("/v1/rooms/{room_id}/join"), Some(token), None).await?;
    let gateway = ticket["gateway_url"].as_str().context("a ticket without gateway_url")?;
    let secret = ticket["ticket"].as_str().context("a ticket reply without ticket")?;
    let mut request = gateway.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", format!("confab.v1, confab.ticket.{secret}").parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.context("connecting to the gateway")?;
    while let Some(frame) = socket.next().await {
        if let Message::Text(text) = frame? {
            let peer_id = welcome_peer_id(&text)?;
            let sfu = match read(&text) {
                Some(Kind::Welcome(welcome)) => welcome.sfu.map(|sfu| sfu.peer_id),
                _ => None,
            };
            return Ok(Joined { socket, peer_id, sfu });
        }
    }
    bail!("the gateway closed before its welcome")
}

pub type Ready = mpsc::UnboundedSender<(usize, anyhow::Result<()>)>;

/// One participant: waits for the recording (or the SFU), connects to the recorder (or the
/// SFU), reports on `ready`, sends the clip as planned, and leaves when told. A failure is
/// reported on `ready` too.
#[allow(clippy::too_many_arguments)]
pub async fn participant(
    index: usize,
    joined: Joined,
    route: Route,
    clip: Arc<Clip>,
    sent: Arc<Sent>,
    ready: Ready,
    plan: watch::Receiver<Option<(Pacing, Pacing)>>,
    leave: watch::Receiver<bool>,
) {
    if let Err(e) = send_to_recorder(index, joined, route, &clip, &sent, &ready, plan, leave).await {
        let _ = ready.send((index, Err(e)));
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn send_to_recorder(
    index: usize,
    Joined { socket, sfu, .. }: Joined,
    route: Route,
    clip: &Clip,
    sent: &Sent,
    ready: &Ready,
    mut plan: watch::Receiver<Option<(Pacing, Pacing)>>,
    mut leave: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let to = match (route, sfu) {
        (Route::ThroughSfu, Some(sfu)) => sfu,
        (Route::ThroughSfu, None) => {
            tokio::time::timeout(SIGNALING_TIMEOUT, media_changed(&mut stream)).await.context("no SFU")??
        }
        (Route::Direct, _) => tokio::time::timeout(SIGNALING_TIMEOUT, recording_started(&mut stream))
            .await
            .context("no recording_started")??,
    };

    let SenderPeer { connection, candidates, mut state } = sender_peer().await?;
    let (video_ssrc, audio_ssrc) = (0x1000_0000 + index as u32, 0x2000_0000 + index as u32);
    let video = confab_call::sample_track("participant", RtpCodecKind::Video, video_ssrc, vp8())?;
    let audio = confab_call::sample_track("participant", RtpCodecKind::Audio, audio_ssrc, opus())?;
    let video_transceiver = confab_call::add_send_only(&connection, Arc::clone(&video)).await?;
    let audio_transceiver = confab_call::add_send_only(&connection, Arc::clone(&audio)).await?;
    let offer = connection.create_offer(None).await?;
    connection.set_local_description(offer.clone()).await?;
    let section = MediaSection::of_candidates(&offer.sdp);
    let offer = Signal { connection: route.connection().to_owned(), ..confab_call::signals::offer(&to, offer.sdp) };
    sink.send(Message::text(client_text(client_message::Kind::Signal(offer)))).await?;
    let trickled = (candidates, section);
    let peer = (to, route.connection());
    let signaling = tokio::spawn(relay_signaling(sink, stream, peer, Arc::clone(&connection), trickled, leave.clone()));

    let state = *tokio::time::timeout(
        SIGNALING_TIMEOUT,
        state.wait_for(|s| matches!(s, RTCPeerConnectionState::Connected | RTCPeerConnectionState::Failed)),
    )
    .await
    .context("not connected in time")??;
    if state != RTCPeerConnectionState::Connected {
        bail!("the connection failed");
    }
    let negotiated = |transceiver| confab_call::negotiated_payload_type(transceiver);
    let video_pt = negotiated(&video_transceiver).await.context("no video codec negotiated")?;
    let audio_pt = negotiated(&audio_transceiver).await.context("no audio codec negotiated")?;
    if route == Route::ThroughSfu {
        // One frame of each track, not counted as sent: it opens the tracks at the SFU, which then
        // offers them to the recorder (the recorder's copy begins at the plan's first keyframe).
        let now = std::time::Instant::now();
        let first = |frame: &[u8], duration| Sample { data: frame.to_vec().into(), duration, ..Sample::new(now) };
        video.sample_writer(video_ssrc, video_pt).write_sample(&first(&clip.video[0], clip.video_interval)).await?;
        audio.sample_writer(audio_ssrc, audio_pt).write_sample(&first(&clip.audio[0], clip.audio_interval)).await?;
    }
    let _ = ready.send((index, Ok(())));

    let (video_pacing, audio_pacing) = (*plan.wait_for(Option::is_some).await?).context("no plan")?;
    let send_sample = |track: &Arc<TrackLocalStaticSample>, ssrc: u32, pt: u8, duration: Duration| {
        let track = Arc::clone(track);
        move |frame: &[u8], at: std::time::Instant| {
            let track = Arc::clone(&track);
            let sample = Sample { data: frame.to_vec().into(), duration, ..Sample::new(at) };
            async move { track.sample_writer(ssrc, pt).write_sample(&sample).await.is_ok() }
        }
    };
    tokio::join!(
        video_pacing.run(
            &clip.video,
            &sent.video,
            send_sample(&video, video_ssrc, video_pt, video_pacing.sample_duration(90_000))
        ),
        audio_pacing.run(
            &clip.audio,
            &sent.audio,
            send_sample(&audio, audio_ssrc, audio_pt, audio_pacing.sample_duration(48_000))
        ),
    );

    leave.wait_for(|leave| *leave).await?;
    let _ = connection.close().await;
    let _ = signaling.await;
    Ok(())
}

/// Waits until the recorder captures `publishers` participants (its `recorder_participants_active`
/// gauge); why not, if it does not within the signaling timeout.
async fn captures_running(args: &Args, publishers: usize) -> Result<(), String> {
    let deadline = Instant::now() + SIGNALING_TIMEOUT;
    let mut active = 0.0;
    while Instant::now() < deadline {
        let metrics = scrape_metrics(args.recorder_metrics.as_deref()).await;
        active = metrics.iter().find(|(name, _)| name == "recorder_participants_active").map_or(0.0, |(_, v)| *v);
        if active >= publishers as f64 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the recorder captured {active} of {publishers} publishers when the window opened"))
}

/// Reads until `media_changed` names the SFU; its peer id.
async fn media_changed(stream: &mut SplitStream<Socket>) -> anyhow::Result<String> {
    while let Some(frame) = stream.next().await {
        if let Message::Text(text) = frame?
            && let Some(Kind::MediaChanged(changed)) = read(&text)
            && let Some(sfu) = changed.sfu
        {
            return Ok(sfu.peer_id);
        }
    }
    bail!("the gateway closed the connection")
}

/// Reads until `recording_started`; the recorder's peer id.
pub async fn recording_started(stream: &mut SplitStream<Socket>) -> anyhow::Result<String> {
    while let Some(frame) = stream.next().await {
        if let Message::Text(text) = frame?
            && let Some(Kind::RecordingStarted(started)) = read(&text)
        {
            return Ok(started.recorder_peer_id);
        }
    }
    bail!("the gateway closed the connection")
}

/// The participant's signaling after its offer: applies the answer and candidates of `peer` (the
/// recorder, or the SFU about the `publish` connection), trickles its own, keeps the connection
/// alive, and says `bye` when told to leave. Nothing else is answered: the SFU's `subscribe`
/// offers stay unanswered, so it forwards nothing to the load tool.
pub async fn relay_signaling(
    mut sink: SplitSink<Socket, Message>,
    mut stream: SplitStream<Socket>,
    (to, about): (String, &'static str),
    connection: Arc<dyn PeerConnection>,
    (mut candidates, section): (mpsc::UnboundedReceiver<IceCandidate>, MediaSection),
    mut leave: watch::Receiver<bool>,
) {
    let mut keepalive = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { return };
                let Message::Text(text) = frame else { continue };
                let Some(Kind::Signal(signal)) = read(&text) else { continue };
                if signal.from != to || signal.connection != about {
                    continue;
                }
                match signal.payload {
                    Some(Payload::Sdp(answer)) if answer.r#type == "answer" => {
                        // Errors unprinted: their text may quote the SDP.
                        let applied = match RTCSessionDescription::answer(answer.sdp) {
                            Ok(answer) => connection.set_remote_description(answer).await.is_ok(),
                            Err(_) => false,
                        };
                        if !applied {
                            eprintln!("the answer could not be applied");
                        }
                    }
                    Some(Payload::Candidate(candidate)) => {
                        let _ = connection.add_ice_candidate(rtc_candidate(candidate)).await;
                    }
                    _ => {}
                }
            }
            Some(candidate) = candidates.recv() => {
                let payload = Some(Payload::Candidate(section.place(candidate)));
                let signal = Signal { to: to.clone(), connection: about.to_owned(), payload, ..Signal::default() };
                if sink.send(Message::text(client_text(client_message::Kind::Signal(signal)))).await.is_err() {
                    return;
                }
            }
            _ = keepalive.tick() => {
                let ping = client_message::Kind::Ping(Ping { timestamp_ms: unix_ms() as u64 });
                if sink.send(Message::text(client_text(ping))).await.is_err() {
                    return;
                }
            }
            _ = leave.changed() => {
                let _ = sink.send(Message::text(client_text(client_message::Kind::Bye(Bye {})))).await;
                let _ = sink.close().await;
                return;
            }
        }
    }
}
