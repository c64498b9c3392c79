//! The destination libwebm writes to. libwebm asks for the current position before nearly every
//! element, and `BufWriter::stream_position` flushes, so the position is tracked here instead.
//! The handle is shared (the segment owns one clone) so that the file can be flushed to the OS
//! mid-stream, and it keeps the first IO error, which the `webm` crate reduces to a bare `false`.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Clone)]
pub(super) struct SharedFile(Arc<Mutex<Inner>>);

struct Inner {
    file: BufWriter<File>,
    position: u64,
    error: Option<io::Error>,
}

impl SharedFile {
    pub fn new(file: File) -> Self {
        Self(Arc::new(Mutex::new(Inner { file: BufWriter::with_capacity(64 * 1024, file), position: 0, error: None })))
    }

    /// The first IO error libwebm ran into, if any.
    pub fn take_error(&self) -> Option<io::Error> {
        self.lock().error.take()
    }

    /// Hands the buffered bytes to the OS, so that they survive the process being killed.
    pub fn flush_to_os(&self) -> io::Result<()> {
        self.lock().file.flush()
    }

    /// Flushes and waits until the file's data is on disk.
    pub fn sync(&self) -> io::Result<()> {
        let mut inner = self.lock();
        inner.file.flush()?;
        inner.file.get_ref().sync_all()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, and the state stays consistent if something did.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn record<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        result.map_err(|error| {
            let kind = error.kind();
            if kind != io::ErrorKind::Interrupted {
                self.error.get_or_insert(error);
            }
            io::Error::from(kind)
        })
    }
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.lock();
        let result = inner.file.write(buf);
        let written = inner.record(result)?;
        inner.position += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut inner = self.lock();
        let result = inner.file.flush();
        inner.record(result)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let mut inner = self.lock();
        let result = match pos {
            SeekFrom::Current(0) => Ok(inner.position),
            pos => inner.file.seek(pos),
        };
        inner.position = inner.record(result)?;
        Ok(inner.position)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.lock().position)
    }
}
