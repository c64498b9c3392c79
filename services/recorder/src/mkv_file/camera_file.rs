//! One camera's Matroska file. Nothing is on disk that a crash could leave half-written except
//! the cluster being written at that moment: the header goes out (and to the OS) at the first
//! keyframe, each cluster is built in memory and written with its size known and flushed to the OS
//! as it closes, and `finish` appends Cues, then patches the Segment size, the SeekHead and the
//! Duration into room reserved for them, and fsyncs.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::G711;
use super::ebml::{self, id};
use super::h264::{self, DecoderConfig};
use crate::recording_file::{FinishedFile, hash_file};

/// Milliseconds: the Matroska default and what the WebM files use. Block times are 16-bit offsets
/// from their cluster's time, so 1 ms allows clusters of up to 32 s while 1 µs would cap them at
/// 32 ms; cameras' 90 kHz video and 20 ms audio packets need no finer grain for playback.
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// A cluster closes at the next keyframe or once it spans this much, whichever comes first: at
/// most this much media (plus one keyframe interval at worst) is lost when the process dies.
const CLUSTER_MAX_MS: u64 = 5_000;
/// Room before Info for the SeekHead written by `finish` (it needs 68 bytes).
const SEEK_HEAD_RESERVED: usize = 96;
/// A Duration element: 2-byte ID, 1-byte size, 8-byte float.
const DURATION_RESERVED: usize = 11;
const VIDEO_TRACK: u8 = 1;
const AUDIO_TRACK: u8 = 2;

/// Writes a camera's H.264 access units (each as its NAL units) and, optionally, its G.711 audio
/// into a Matroska file. Frames must come in the order of their timestamps across both tracks (as
/// the media pipeline emits them); video before the first keyframe carrying SPS and PPS, and audio
/// before that keyframe, are dropped: the file starts at that keyframe.
pub struct CameraFile {
    path: PathBuf,
    audio: Option<G711>,
    state: State,
    dropped_frames: u64,
}

enum State {
    /// The file is created, nothing written yet.
    Waiting(File),
    Open(Box<OpenFile>),
    Closed,
}

struct OpenFile {
    file: BufWriter<File>,
    /// Bytes written so far (the position of the next one).
    position: u64,
    /// Where the Segment's payload starts: Matroska positions count from here.
    segment_start: u64,
    duration_position: u64,
    dimensions: (u16, u16),
    origin_ns: u64,
    last_ns: u64,
    cluster: Option<Cluster>,
    /// (time in ms, cluster position) of each cluster that starts with a video keyframe.
    cues: Vec<(u64, u64)>,
}

struct Cluster {
    time_ms: u64,
    starts_with_keyframe: bool,
    blocks: Vec<u8>,
}

impl CameraFile {
    /// Creates the file at `path` now, so that a bad path or a full disk shows at once.
    pub fn create(path: impl Into<PathBuf>, audio: Option<G711>) -> io::Result<Self> {
        let path = path.into();
        let file = File::create(&path)?;
        Ok(Self { path, audio, state: State::Waiting(file), dropped_frames: 0 })
    }

    /// Writes one access unit, given as its NAL units. Returns false if it was dropped.
    pub fn write_video<U: AsRef<[u8]>>(&mut self, timestamp_ns: u64, nal_units: &[U]) -> io::Result<bool> {
        let units = h264::non_empty(nal_units);
        let keyframe = h264::is_keyframe(&units);
        if let State::Waiting(_) = self.state {
            match DecoderConfig::from_units(&units).filter(|_| keyframe) {
                Some(config) => self.open(&config, timestamp_ns)?,
                None => return Ok(self.drop_frame()),
            }
        }
        let written = match &mut self.state {
            State::Open(file) if !units.is_empty() => {
                file.add(VIDEO_TRACK, timestamp_ns, &h264::length_prefixed(&units), keyframe)?
            }
            _ => false,
        };
        Ok(written || self.drop_frame())
    }

    /// Writes one packet of G.711 samples. Returns false if it was dropped.
    pub fn write_audio(&mut self, timestamp_ns: u64, samples: &[u8]) -> io::Result<bool> {
        let written = match &mut self.state {
            State::Open(file) if self.audio.is_some() => file.add(AUDIO_TRACK, timestamp_ns, samples, true)?,
            _ => false,
        };
        Ok(written || self.drop_frame())
    }

    /// Frames not written: before the first keyframe, audio without an audio track, and frames
    /// that would have gone back in time.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Completes the file: last cluster, Cues, sizes, Duration, fsync. `None` if no keyframe ever
    /// came (the empty file is removed).
    pub fn finish(mut self) -> io::Result<Option<FinishedFile>> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Waiting(file) => {
                drop(file);
                std::fs::remove_file(&self.path)?;
                Ok(None)
            }
            State::Open(file) => {
                let (dimensions, duration_ms) = (file.dimensions, (file.last_ns - file.origin_ns) / 1_000_000);
                file.finish()?;
                let (bytes, sha256) = hash_file(&self.path)?;
                let mut codecs = vec!["h264"];
                codecs.extend(self.audio.map(G711::codec_name));
                Ok(Some(FinishedFile {
                    path: self.path.clone(),
                    bytes,
                    duration_ms,
                    content_type: super::CONTENT_TYPE,
                    codecs,
                    dimensions: Some(dimensions),
                    sha256,
                }))
            }
            State::Closed => Ok(None),
        }
    }

    fn drop_frame(&mut self) -> bool {
        self.dropped_frames += 1;
        false
    }

    fn open(&mut self, config: &DecoderConfig, origin_ns: u64) -> io::Result<()> {
        let State::Waiting(file) = std::mem::replace(&mut self.state, State::Closed) else { return Ok(()) };
        let dimensions = (clamp_u16(config.width), clamp_u16(config.height));
        let mut header = ebml::master(
            id::EBML,
            &[
                ebml::uint(id::EBML_VERSION, 1),
                ebml::uint(id::EBML_READ_VERSION, 1),
                ebml::uint(id::EBML_MAX_ID_LENGTH, 4),
                ebml::uint(id::EBML_MAX_SIZE_LENGTH, 8),
                ebml::string(id::DOC_TYPE, "matroska"),
                ebml::uint(id::DOC_TYPE_VERSION, 4),
                ebml::uint(id::DOC_TYPE_READ_VERSION, 2),
            ],
        );
        header.extend(ebml::id_bytes(id::SEGMENT));
        header.extend(ebml::UNKNOWN_SIZE);
        let segment_start = header.len() as u64;
        header.extend(ebml::void(SEEK_HEAD_RESERVED));
        let info_head = [
            ebml::uint(id::TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS),
            ebml::string(id::MUXING_APP, "confab-recorder"),
            ebml::string(id::WRITING_APP, "confab-recorder"),
        ]
        .concat();
        let info = ebml::element(id::INFO, &[info_head.clone(), ebml::void(DURATION_RESERVED)].concat());
        let duration_position = (header.len() + info.len() - DURATION_RESERVED) as u64;
        header.extend(info);
        header.extend(self.tracks(config, dimensions));

        let mut file = BufWriter::with_capacity(64 * 1024, file);
        file.write_all(&header)?;
        file.flush()?;
        self.state = State::Open(Box::new(OpenFile {
            file,
            position: header.len() as u64,
            segment_start,
            duration_position,
            dimensions,
            origin_ns,
            last_ns: origin_ns,
            cluster: None,
            cues: Vec::new(),
        }));
        Ok(())
    }

    fn tracks(&self, config: &DecoderConfig, (width, height): (u16, u16)) -> Vec<u8> {
        let mut entries = vec![ebml::master(
            id::TRACK_ENTRY,
            &[
                ebml::uint(id::TRACK_NUMBER, VIDEO_TRACK.into()),
                ebml::uint(id::TRACK_UID, VIDEO_TRACK.into()),
                ebml::uint(id::TRACK_TYPE, 1),
                ebml::uint(id::FLAG_LACING, 0),
                ebml::string(id::CODEC_ID, "V_MPEG4/ISO/AVC"),
                ebml::element(id::CODEC_PRIVATE, &config.avcc),
                ebml::master(
                    id::VIDEO,
                    &[ebml::uint(id::PIXEL_WIDTH, width.into()), ebml::uint(id::PIXEL_HEIGHT, height.into())],
                ),
            ],
        )];
        if let Some(audio) = self.audio {
            entries.push(ebml::master(
                id::TRACK_ENTRY,
                &[
                    ebml::uint(id::TRACK_NUMBER, AUDIO_TRACK.into()),
                    ebml::uint(id::TRACK_UID, AUDIO_TRACK.into()),
                    ebml::uint(id::TRACK_TYPE, 2),
                    ebml::uint(id::FLAG_LACING, 0),
                    ebml::string(id::CODEC_ID, "A_MS/ACM"),
                    ebml::element(id::CODEC_PRIVATE, &audio.wave_format_ex()),
                    ebml::master(
                        id::AUDIO,
                        &[
                            ebml::float(id::SAMPLING_FREQUENCY, f64::from(G711::SAMPLE_RATE)),
                            ebml::uint(id::CHANNELS, 1),
                            ebml::uint(id::BIT_DEPTH, 8),
                        ],
                    ),
                ],
            ));
        }
        ebml::master(id::TRACKS, &entries)
    }
}

impl OpenFile {
    /// Adds one block; false if it would go back in time.
    fn add(&mut self, track: u8, timestamp_ns: u64, data: &[u8], keyframe: bool) -> io::Result<bool> {
        if timestamp_ns < self.last_ns {
            return Ok(false);
        }
        self.last_ns = timestamp_ns;
        let time_ms = (timestamp_ns - self.origin_ns) / TIMESTAMP_SCALE_NS;
        let video_keyframe = keyframe && track == VIDEO_TRACK;
        let full = self.cluster.as_ref().is_some_and(|c| video_keyframe || time_ms - c.time_ms > CLUSTER_MAX_MS);
        if full {
            self.close_cluster()?;
        }
        let cluster = self.cluster.get_or_insert_with(|| Cluster {
            time_ms,
            starts_with_keyframe: video_keyframe,
            blocks: Vec::new(),
        });
        let relative = i16::try_from(time_ms - cluster.time_ms).expect("a cluster spans at most 5 s");
        let mut block = vec![0x80 | track];
        block.extend_from_slice(&relative.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0 });
        block.extend_from_slice(data);
        cluster.blocks.extend(ebml::element(id::SIMPLE_BLOCK, &block));
        Ok(true)
    }

    /// Writes the open cluster, if any, and hands it to the OS.
    fn close_cluster(&mut self) -> io::Result<()> {
        let Some(cluster) = self.cluster.take() else { return Ok(()) };
        let relative_position = self.position - self.segment_start;
        if cluster.starts_with_keyframe {
            self.cues.push((cluster.time_ms, relative_position));
        }
        let bytes = ebml::element(id::CLUSTER, &[ebml::uint(id::TIMESTAMP, cluster.time_ms), cluster.blocks].concat());
        self.file.write_all(&bytes)?;
        self.file.flush()?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.close_cluster()?;
        let cues_position = self.position - self.segment_start;
        let points: Vec<Vec<u8>> = self
            .cues
            .iter()
            .map(|(time_ms, position)| {
                ebml::master(
                    id::CUE_POINT,
                    &[
                        ebml::uint(id::CUE_TIME, *time_ms),
                        ebml::master(
                            id::CUE_TRACK_POSITIONS,
                            &[
                                ebml::uint(id::CUE_TRACK, VIDEO_TRACK.into()),
                                ebml::uint(id::CUE_CLUSTER_POSITION, *position),
                            ],
                        ),
                    ],
                )
            })
            .collect();
        let cues = ebml::master(id::CUES, &points);
        self.file.write_all(&cues)?;
        self.position += cues.len() as u64;

        let segment_size = self.position - self.segment_start;
        self.patch(self.segment_start - 8, &ebml::sized(segment_size, 8))?;
        let seek = |target: u32, position: u64| {
            ebml::master(
                id::SEEK,
                &[ebml::element(id::SEEK_ID, &ebml::id_bytes(target)), ebml::uint8(id::SEEK_POSITION, position)],
            )
        };
        let info_position = SEEK_HEAD_RESERVED as u64;
        let tracks_position = self.duration_position + DURATION_RESERVED as u64 - self.segment_start;
        let mut seek_head = ebml::master(
            id::SEEK_HEAD,
            &[seek(id::INFO, info_position), seek(id::TRACKS, tracks_position), seek(id::CUES, cues_position)],
        );
        seek_head.extend(ebml::void(SEEK_HEAD_RESERVED - seek_head.len()));
        self.patch(self.segment_start, &seek_head)?;
        let duration_ms = (self.last_ns - self.origin_ns) as f64 / TIMESTAMP_SCALE_NS as f64;
        self.patch(self.duration_position, &ebml::float(id::DURATION, duration_ms))?;
        self.file.flush()?;
        self.file.get_ref().sync_all()
    }

    /// Overwrites bytes already written (the position is left at the end).
    fn patch(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(bytes)?;
        self.file.seek(SeekFrom::Start(self.position))?;
        Ok(())
    }
}

fn clamp_u16(value: u32) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}
