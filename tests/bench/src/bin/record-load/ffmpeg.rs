//! The ffmpeg step: the same frames as plain RTP to one `ffmpeg -c copy` process per stream.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use confab_bench::rss_kib;
use rtc::rtp::packetizer::{Packetizer, new_packetizer};
use rtc::rtp::sequence::new_random_sequencer;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::shared::marshal::Marshal;
use tokio::net::UdpSocket;

use crate::clip::{Clip, count_frames};
use crate::measure::{Step, measure_window};
use crate::pacing::{Counts, Pacing, Schedule, Sent};
use crate::{Args, DRAIN};
use confab_call::{opus, vp8};

/// The RTP payload size webrtc-rs's sample tracks packetize to; the ffmpeg feed uses the same.
const RTP_MTU: usize = 1200;
const VIDEO_PAYLOAD_TYPE: u8 = 96;
const OPUS_PAYLOAD_TYPE: u8 = 111;

pub async fn ffmpeg_step(args: &Args, clip: &Arc<Clip>, n: usize) -> anyhow::Result<Step> {
    let dir = args.work_dir.join(format!("n{n}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut children: Vec<(Child, PathBuf)> = Vec::new();
    let mut ports = Vec::new();
    for i in 0..n {
        let video_port = args.ffmpeg_port_base + 4 * i as u16;
        let audio_port = video_port + 2;
        let sdp = dir.join(format!("stream-{i}.sdp"));
        std::fs::write(&sdp, rtp_sdp(video_port, audio_port))?;
        let out = dir.join(format!("stream-{i}.webm"));
        let log = std::fs::File::create(dir.join(format!("stream-{i}.log")))?;
        let mut command = match &args.ffmpeg_cpus {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", cpus, "ffmpeg"]);
                taskset
            }
            None => Command::new("ffmpeg"),
        };
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-protocol_whitelist", "file,udp,rtp", "-i"])
            .arg(&sdp)
            .args(["-c", "copy", "-f", "webm", "-y"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        children.push((command.spawn().context("starting ffmpeg")?, out));
        ports.push((video_port, audio_port));
    }
    let pids: Vec<u32> = children.iter().map(|(child, _)| child.id()).collect();
    let outcome = ffmpeg_measure(args, clip, n, &pids, &ports).await;

    // SIGINT once: ffmpeg writes the WebM's trailer and exits.
    for pid in &pids {
        let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    }
    let mut notes = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for (child, _) in &mut children {
        while child.try_wait()?.is_none() {
            if std::time::Instant::now() > deadline {
                notes.push(format!("ffmpeg {} did not finish after SIGINT; killed", child.id()));
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (mut step, sent) = outcome?;
    step.notes.extend(notes);
    for (i, (sent, (_, out))) in sent.iter().zip(&children).enumerate() {
        let (video, audio) =
            match std::fs::File::open(out).map_err(anyhow::Error::from).and_then(|f| count_frames(BufReader::new(f))) {
                Ok(counts) => counts,
                Err(e) => {
                    step.notes.push(format!("stream {i}: {e:#}"));
                    (0, 0)
                }
            };
        step.add(sent, video, audio);
    }
    // Every process ends its input with "Connection timed out" when interrupted; anything else
    // is worth showing.
    let warnings: Vec<String> = (0..n)
        .filter_map(|i| std::fs::read_to_string(dir.join(format!("stream-{i}.log"))).ok())
        .flat_map(|log| log.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| !line.trim().is_empty() && !line.ends_with("Connection timed out"))
        .collect();
    if let Some(first) = warnings.first() {
        step.notes.push(format!("ffmpeg logged {} warnings, e.g. {first}", warnings.len()));
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(step)
}

/// Waits for the ffmpeg processes to listen, sends every stream and measures the window.
pub async fn ffmpeg_measure(
    args: &Args,
    clip: &Arc<Clip>,
    n: usize,
    pids: &[u32],
    ports: &[(u16, u16)],
) -> anyhow::Result<(Step, Vec<Arc<Sent>>)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for &(video_port, audio_port) in ports {
        while !port_taken(video_port) || !port_taken(audio_port) {
            if std::time::Instant::now() > deadline {
                bail!("ffmpeg did not bind UDP port {video_port} or {audio_port} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let rss_before = pids.iter().filter_map(|&pid| rss_kib(pid)).sum();
    let schedule = Schedule::new(args, clip);
    let mut senders = Vec::new();
    let mut sent_all = Vec::new();
    for (index, &(video_port, audio_port)) in ports.iter().enumerate() {
        let sent = Arc::new(Sent::default());
        sent_all.push(Arc::clone(&sent));
        let (video_pacing, audio_pacing) = schedule.pacing(clip, index, n);
        let clip = Arc::clone(clip);
        let ssrcs = (0x1000_0000 + index as u32, 0x2000_0000 + index as u32);
        senders.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            let video_to = SocketAddr::from(([127, 0, 0, 1], video_port));
            let audio_to = SocketAddr::from(([127, 0, 0, 1], audio_port));
            let video = RtpStream { to: video_to, codec: vp8(), payload_type: VIDEO_PAYLOAD_TYPE, ssrc: ssrcs.0 };
            let audio = RtpStream { to: audio_to, codec: opus(), payload_type: OPUS_PAYLOAD_TYPE, ssrc: ssrcs.1 };
            let (video, audio) = tokio::join!(
                video.send(&socket, &clip.video, video_pacing, &sent.video),
                audio.send(&socket, &clip.audio, audio_pacing, &sent.audio),
            );
            video.and(audio)
        }));
    }
    let measured = measure_window(pids, &schedule).await;
    for sender in senders {
        sender.await??;
    }
    tokio::time::sleep(DRAIN).await;
    let step = Step::new(n, 0, pids.len(), rss_before, &measured);
    Ok((step, sent_all))
}

/// One track as plain RTP over UDP to `to`.
pub struct RtpStream {
    pub to: SocketAddr,
    pub codec: RTCRtpCodec,
    pub payload_type: u8,
    pub ssrc: u32,
}

impl RtpStream {
    /// Sends the frames as paced, packetized as webrtc-rs's sample tracks do.
    pub async fn send(
        &self,
        socket: &UdpSocket,
        frames: &[Vec<u8>],
        pacing: Pacing,
        counts: &Counts,
    ) -> anyhow::Result<()> {
        let mut packetizer = new_packetizer(
            std::time::Instant::now(),
            RTP_MTU,
            self.payload_type,
            self.ssrc,
            self.codec.payloader()?,
            Box::new(new_random_sequencer()),
            self.codec.clock_rate,
        );
        pacing
            .run(frames, counts, |frame, at| {
                let data = frame.to_vec().into();
                let packets = packetizer.packetize(at, &data, pacing.ticks);
                async move {
                    let Ok(packets) = packets else { return false };
                    let mut all_sent = true;
                    for packet in packets {
                        let Ok(bytes) = packet.marshal() else { return false };
                        all_sent &= socket.send_to(&bytes, self.to).await.is_ok();
                    }
                    all_sent
                }
            })
            .await;
        Ok(())
    }
}

/// An SDP for ffmpeg's RTP demuxer: VP8 and Opus on two local ports.
pub fn rtp_sdp(video_port: u16, audio_port: u16) -> String {
    format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=record-load\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {video_port} RTP/AVP {VIDEO_PAYLOAD_TYPE}\r\na=rtpmap:{VIDEO_PAYLOAD_TYPE} VP8/90000\r\n\
         m=audio {audio_port} RTP/AVP {OPUS_PAYLOAD_TYPE}\r\na=rtpmap:{OPUS_PAYLOAD_TYPE} opus/48000/2\r\n"
    )
}

/// Whether something (ffmpeg) already listens on a local UDP port.
pub fn port_taken(port: u16) -> bool {
    std::net::UdpSocket::bind(("0.0.0.0", port)).is_err()
}
