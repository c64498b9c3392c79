//! Rebuilds a file that a crashed recorder left behind (or one whose writing a full disk cut
//! short): it plays up to its last flushed second but has no Cues and no Duration, so players
//! cannot seek in it. Its frames are read back and written again, without decoding, into a
//! finished file that then takes its place.

use std::fs::{self, File};
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use matroska_demuxer::{Frame as ReadFrame, MatroskaFile, TrackType};

use super::{ParticipantFile, VideoCodec};
use crate::media::{Frame, FrameData};
use crate::recording_file::{DiskFull, FileError, FinishedFile, MediaKind};

/// The largest crashed file rebuilt from a copy in memory when the disk has no room for a
/// rebuilt copy beside it: some 20 minutes of a 1.5 Mbit/s stream, a quarter of the recorder's
/// memory limit in deploy/k8s.
const IN_MEMORY_UP_TO: u64 = 256 << 20;

/// Rebuilds `path` in place. `None` when it holds no frame (it is then removed); an error when
/// even its header cannot be read.
pub fn rebuild(path: &Path) -> Result<Option<FinishedFile>, FileError> {
    rebuild_with(path, remux)
}

/// Rebuilds the crashed file at `path` with `remux` (which reads the crashed file and writes the
/// finished one at the path it is given) into a copy beside it, which then takes its place. When
/// the disk has no room for that copy (a full disk stopped the recording), the crashed file is
/// read into memory, if it is not too big, and rebuilt over itself: should the recorder die
/// meanwhile, what it leaves is a crashed file again, which the next take-over rebuilds; should
/// even that not fit, the crashed file is written back as it was.
pub(crate) fn rebuild_with<E: From<io::Error> + DiskFull>(
    path: &Path,
    remux: impl Fn(Lenient, &Path) -> Result<Option<FinishedFile>, E>,
) -> Result<Option<FinishedFile>, E> {
    let extension = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    let beside = path.with_extension(format!("{extension}.rebuilding"));
    match remux(Lenient::open(path)?, &beside) {
        Err(e) if e.is_disk_full() => {
            match fs::remove_file(&beside) {
                Err(gone) if gone.kind() == io::ErrorKind::NotFound => {}
                removed => removed?,
            }
            if fs::metadata(path)?.len() > IN_MEMORY_UP_TO {
                return Err(e);
            }
            let crashed = Rc::new(fs::read(path)?);
            remux(Lenient::in_memory(crashed.clone()), path).or_else(|e| {
                fs::write(path, crashed.as_slice())?;
                Err(e)
            })
        }
        rebuilt => Ok(put_in_place(&beside, path, rebuilt?)?),
    }
}

/// Writes the frames of the crashed WebM file into a finished one at `target`.
fn remux(crashed: Lenient, target: &Path) -> Result<Option<FinishedFile>, FileError> {
    let mut crashed = MatroskaFile::open(crashed).map_err(|_| FileError::Mux("read the header of a crashed file"))?;
    let scale_ns = crashed.info().timestamp_scale().get();
    let mut video = None;
    let mut audio = None;
    for track in crashed.tracks() {
        match (track.track_type(), track.codec_id()) {
            (TrackType::Video, "V_VP8") => video = Some((track.track_number().get(), VideoCodec::Vp8, track)),
            (TrackType::Video, "V_VP9") => video = Some((track.track_number().get(), VideoCodec::Vp9, track)),
            (TrackType::Audio, "A_OPUS") => audio = Some(track.track_number().get()),
            _ => {}
        }
    }
    let dimensions = video.and_then(|(_, _, track)| {
        let v = track.video()?;
        Some((u16::try_from(v.pixel_width().get()).ok()?, u16::try_from(v.pixel_height().get()).ok()?))
    });
    let (video_track, codec) = video.map_or((None, VideoCodec::Vp8), |(number, codec, _)| (Some(number), codec));

    let mut rebuilt = ParticipantFile::create(target, codec, audio.is_some())?;
    let mut read = ReadFrame::default();
    // A truncated last block ends the reading: what comes before it is all there is.
    while let Ok(true) = crashed.next_frame(&mut read) {
        let kind = match Some(read.track) {
            t if t == video_track => MediaKind::Video,
            t if t == audio => MediaKind::Audio,
            _ => continue,
        };
        let keyframe = read.is_keyframe.unwrap_or(kind == MediaKind::Audio);
        let frame = Frame {
            data: FrameData::Whole(std::mem::take(&mut read.data)),
            keyframe,
            rtp_timestamp: 0,
            dimensions: if keyframe && kind == MediaKind::Video { dimensions } else { None },
        };
        // One picture size per file, so no rotation can happen here.
        rebuilt.write(kind, read.timestamp * scale_ns, &frame)?;
    }
    rebuilt.finish()
}

/// A file reader that, like an in-memory cursor, lets the position go past the end (reads there
/// return nothing). The demuxer seeks to the end of a cluster whose size a crash left unknown
/// (2^56 bytes), which the OS refuses for a real file; that would end the reading one cluster
/// early. Camera files (`crate::mkv_file`) are read back through it too.
pub(crate) struct Lenient {
    file: Box<dyn ReadSeek>,
    len: u64,
    /// Where the caller is.
    position: u64,
    /// Where `file` is.
    file_position: u64,
}

trait ReadSeek: Read + Seek {}

impl<T: Read + Seek> ReadSeek for T {}

impl Lenient {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file: Box::new(BufReader::new(file)), len, position: 0, file_position: 0 })
    }

    /// Reads a file's bytes already in memory, so that the file itself can be overwritten.
    fn in_memory(bytes: Rc<Vec<u8>>) -> Self {
        let len = bytes.len() as u64;
        Self { file: Box::new(Cursor::new(SharedBytes(bytes))), len, position: 0, file_position: 0 }
    }
}

struct SharedBytes(Rc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Read for Lenient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.len {
            return Ok(0);
        }
        if self.position != self.file_position {
            self.file_position = self.file.seek(SeekFrom::Start(self.position))?;
        }
        let read = self.file.read(buf)?;
        self.position += read as u64;
        self.file_position = self.position;
        Ok(read)
    }
}

impl Seek for Lenient {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, offset) = match to {
            SeekFrom::Start(position) => (position, 0),
            SeekFrom::End(offset) => (self.len, offset),
            SeekFrom::Current(offset) => (self.position, offset),
        };
        self.position = base
            .checked_add_signed(offset)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the file"))?;
        Ok(self.position)
    }
}

/// Moves a rebuilt file over the crashed one at `path`; when it held no frame at all, removes
/// the crashed file instead.
fn put_in_place(rebuilt_path: &Path, path: &Path, finished: Option<FinishedFile>) -> io::Result<Option<FinishedFile>> {
    match finished {
        Some(mut finished) => {
            fs::rename(rebuilt_path, path)?;
            finished.path = path.to_owned();
            Ok(Some(finished))
        }
        None => {
            fs::remove_file(path)?;
            Ok(None)
        }
    }
}
