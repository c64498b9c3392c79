//! The publisher's media: the three pre-encoded VP8 layers (IVF files, read with the testkit's
//! reader), packetized once as webrtc-rs's sample tracks packetize them, so that nothing is
//! encoded or packetized while the run is measured.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use confab_bench::simulcast::LAYERS;
use confab_call::vp8;
use confab_testkit::media::read_ivf;

/// The RTP payload size webrtc-rs's sample tracks packetize to.
const RTP_MTU: usize = 1200;

/// One video frame of one layer: when it is due from the start of the clip, and its RTP payloads
/// (VP8 payload descriptor included); the last one carries the marker bit.
pub struct Frame {
    pub at: Duration,
    pub payloads: Vec<Bytes>,
}

/// The clip, one frame list per entry of [`LAYERS`]; it loops every `period`.
pub struct Clip {
    pub layers: Vec<Vec<Frame>>,
    pub period: Duration,
}

impl Clip {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let mut layers = Vec::new();
        let mut period = Duration::ZERO;
        for layer in &LAYERS {
            let path = dir.join(layer.file);
            if !path.exists() {
                bail!("{} is missing (deploy/local/bench-sfu encodes it)", path.display());
            }
            let ivf = read_ivf(&path);
            let mut payloader = vp8().payloader().context("a VP8 payloader")?;
            let frames = ivf
                .frames
                .iter()
                .map(|(at, data)| {
                    let payloads = payloader.payload(RTP_MTU, &Bytes::copy_from_slice(data))?;
                    Ok(Frame { at: *at, payloads })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let last = frames.last().context("an empty layer")?.at + ivf.last_duration;
            period = period.max(last);
            layers.push(frames);
        }
        Ok(Self { layers, period })
    }

    /// Every payload of every layer, for building the table of packet keys.
    pub fn payloads(&self) -> impl Iterator<Item = &Bytes> {
        self.layers.iter().flatten().flat_map(|frame| &frame.payloads)
    }

    pub fn packets_per_second(&self, layer: usize) -> f64 {
        let packets: usize = self.layers[layer].iter().map(|frame| frame.payloads.len()).sum();
        packets as f64 / self.period.as_secs_f64()
    }
}
