//! Where a recording's files end up. Files are written into the recordings directory; as soon as
//! a participant is done (not at the end of the call) each of its files is handed to storage
//! (with S3: uploaded, and the local copy removed) and then gets its row in `recording_files`,
//! and the participant's counters are added to the recording. Beside each file being written lies
//! a small note saying whose it is, so that a recorder taking over after a crash can rebuild the
//! files the crashed one left (they play, but have no Cues or Duration), or store those whose
//! upload failed, and register them as `recovered`.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use confab_domain::RecordingId;
use confab_storage::{Key, Storage};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::capture::CaptureStats;
use crate::recording_file::FinishedFile;
use crate::webm_file;
use crate::{mkv_file, store};

/// A participant (or camera) as the recording names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who {
    pub peer_id: String,
    pub user_id: String,
    pub display_name: String,
    /// The room role: `camera` for a camera, whose media goes into Matroska.
    pub role: String,
}

/// One participant's capture, done.
pub struct Recorded {
    pub who: Who,
    /// The first file's path; later ones (after a resolution change) are numbered beside it.
    pub path: PathBuf,
    pub files: Vec<FinishedFile>,
    pub stats: CaptureStats,
}

pub struct Archive {
    db: PgPool,
    storage: Storage,
    recording_id: RecordingId,
    /// The recordings directory, which file rows are relative to.
    root: PathBuf,
    /// This recording's directory.
    dir: PathBuf,
}

impl Archive {
    pub fn new(db: PgPool, storage: Storage, root: &Path, recording_id: RecordingId) -> Self {
        let dir = root.join(recording_id.to_string());
        Self { db, storage, recording_id, root: root.to_owned(), dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path for a new file of `who` with `extension` (`webm`, `mkv`), with its note written
    /// beside it.
    pub async fn new_file(&self, who: &Who, extension: &str) -> io::Result<PathBuf> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let path = self.dir.join(format!("{}.{extension}", Uuid::new_v4()));
        let note =
            json!({"peer_id": who.peer_id, "user_id": who.user_id, "display_name": who.display_name, "role": who.role});
        tokio::fs::write(path.with_extension("json"), note.to_string()).await?;
        Ok(path)
    }

    /// Stores and registers a participant's finished files and adds its counters to the
    /// recording. A file that cannot be stored stays in the directory with its note, unregistered,
    /// for a later take-over's [`Archive::recover`].
    pub async fn keep(&self, recorded: &Recorded) -> anyhow::Result<()> {
        for file in &recorded.files {
            self.store(&recorded.who, file, false).await?;
        }
        store::add_stats(&self.db, self.recording_id, &recorded.stats).await?;
        let _ = tokio::fs::remove_file(recorded.path.with_extension("json")).await;
        Ok(())
    }

    /// Rebuilds, stores and registers every file in the recording's directory that has no row
    /// yet: what a recorder that died left behind, or what could not be stored. Only call it while
    /// holding the recording's claim. Returns how many files were recovered.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let known: HashSet<String> = store::file_paths(&self.db, self.recording_id).await?.into_iter().collect();
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let (mut orphans, mut notes) = (Vec::new(), Vec::new());
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("webm" | "mkv") if !known.contains(&self.relative(&path)) => orphans.push(path),
                Some("json") => notes.push(path),
                // A rebuild cut short by another crash: the original is still there.
                Some("rebuilding") => tokio::fs::remove_file(&path).await?,
                _ => {}
            }
        }
        let mut recovered = 0;
        for path in orphans {
            let who = self.whose(&path).await;
            let rebuilding = path.clone();
            let rebuilt = tokio::task::spawn_blocking(move || match rebuilding.extension().and_then(|e| e.to_str()) {
                Some("mkv") => mkv_file::rebuild(&rebuilding).map_err(anyhow::Error::from),
                _ => webm_file::rebuild(&rebuilding).map_err(anyhow::Error::from),
            });
            match rebuilt.await? {
                Ok(Some(file)) => {
                    self.store(&who, &file, true).await?;
                    recovered += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(recording.id = %self.recording_id, error = %e, "cannot rebuild a crashed file")
                }
            }
        }
        for note in notes {
            let _ = tokio::fs::remove_file(note).await;
        }
        Ok(recovered)
    }

    /// The participant a file belongs to, from the note beside its first file (`x.webm` or, for
    /// a numbered `x-2.webm`, `x.json`; the same for cameras' `.mkv`).
    async fn whose(&self, path: &Path) -> Who {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let base = stem.rsplit_once('-').map_or(stem, |(base, _)| base);
        for name in [stem, base] {
            if let Ok(text) = tokio::fs::read_to_string(self.dir.join(format!("{name}.json"))).await {
                let note: Value = serde_json::from_str(&text).unwrap_or_default();
                let text = |key: &str| note[key].as_str().unwrap_or_default().to_owned();
                return Who {
                    peer_id: text("peer_id"),
                    user_id: text("user_id"),
                    display_name: text("display_name"),
                    role: text("role"),
                };
            }
        }
        Who::default()
    }

    /// Hands a finished file to storage, then gives it its row.
    async fn store(&self, who: &Who, file: &FinishedFile, recovered: bool) -> anyhow::Result<()> {
        let key = Key::parse(self.relative(&file.path))?;
        self.storage.store(&key, &file.path).await.with_context(|| format!("cannot store {}", key.as_str()))?;
        store::add_file(&self.db, self.recording_id, who, key.as_str(), file, recovered).await?;
        Ok(())
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).to_string_lossy().into_owned()
    }
}
