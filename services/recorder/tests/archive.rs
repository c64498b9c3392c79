//! The archive against real Postgres and the S3-compatible server that `deploy/local/test` starts
//! (`S3_ENDPOINT`, bucket `S3_BUCKET`): a participant's finished file is uploaded under the key
//! its row names and leaves the spool; a file whose upload fails stays in the spool with its note
//! and no row, and a later take-over's `recover` uploads and registers it.

use std::path::Path;

use confab_domain::RecordingId;
use confab_recorder::archive::{Archive, Recorded, Who};
use confab_recorder::capture::CaptureStats;
use confab_recorder::media::{Frame, FrameData};
use confab_recorder::recording_file::{FinishedFile, MediaKind};
use confab_recorder::webm_file::{ParticipantFile, VideoCodec};
use confab_storage::{Key, Storage};
use confab_testkit::{TempDir, env};
use sqlx::{Executor, PgPool};
use uuid::Uuid;

fn s3(bucket: &str, spool: &Path) -> Storage {
    Storage::open(&confab_testkit::s3_settings(bucket), spool).unwrap()
}

/// A fresh database with a room and one recording in it; the recording's id.
async fn recording_in_a_fresh_database() -> (PgPool, RecordingId) {
    let (db, _) = confab_testkit::fresh_database().await;
    let (owner, room, recording) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    db.execute(sqlx::AssertSqlSafe(format!(
        "insert into users (id, email, display_name, password_hash) values ('{owner}', '{owner}@example.org', 'Ann', 'x');
         insert into rooms (id, name, owner_id, max_participants) values ('{room}', 'Recorded', '{owner}', 4);
         insert into recordings (id, room_id, status, recorder_id) values ('{recording}', '{room}', 'recording', 'rec-a');"
    )))
    .await
    .unwrap();
    (db, RecordingId::from_uuid(recording))
}

fn ann() -> Who {
    Who {
        peer_id: "peer-ann".into(),
        user_id: Uuid::new_v4().to_string(),
        display_name: "Ann".into(),
        role: "member".into(),
    }
}

/// A second of VP8 video (synthetic frames, not decoded by anything here) into a new file of `who`.
async fn recorded(archive: &Archive, who: Who) -> Recorded {
    let path = archive.new_file(&who, "webm").await.unwrap();
    let mut file = ParticipantFile::create(&path, VideoCodec::Vp8, false).unwrap();
    for n in 0..30u64 {
        let keyframe = n == 0;
        let mut data =
            if keyframe { vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00] } else { vec![0x31] };
        data.extend_from_slice(&[0x55; 400]);
        let frame = Frame {
            data: FrameData::Whole(data),
            keyframe,
            rtp_timestamp: 0,
            dimensions: keyframe.then_some((320, 240)),
        };
        file.write(MediaKind::Video, n * 33_333_333, &frame).unwrap();
    }
    let finished: FinishedFile = file.finish().unwrap().expect("a file with frames");
    Recorded { who, path, files: vec![finished], stats: CaptureStats { packets: 90, ..CaptureStats::default() } }
}

async fn rows(db: &PgPool, recording: RecordingId) -> Vec<(String, i64, bool, String)> {
    sqlx::query_as("select path, bytes, recovered, participant from recording_files where recording_id = $1")
        .bind(recording)
        .fetch_all(db)
        .await
        .unwrap()
}

async fn object_size(storage: &Storage, key: &str) -> Option<u64> {
    let Storage::S3(s3) = storage else { panic!("expected S3") };
    s3.head(&Key::parse(key).unwrap()).await.unwrap().map(|meta| meta.size)
}

#[tokio::test]
async fn a_kept_file_is_uploaded_under_the_key_its_row_names_and_leaves_the_spool() {
    let (db, recording) = recording_in_a_fresh_database().await;
    let spool = TempDir::new("archive");
    let storage = s3(&env("S3_BUCKET"), &spool.0);
    let archive = Archive::new(db.clone(), storage.clone(), &spool.0, recording);
    let recorded = recorded(&archive, ann()).await;
    let bytes = recorded.files[0].bytes;

    archive.keep(&recorded).await.unwrap();
    let rows = rows(&db, recording).await;
    assert_eq!(rows.len(), 1);
    let (key, row_bytes, recovered, participant) = &rows[0];
    assert_eq!(*key, format!("{recording}/{}", recorded.path.file_name().unwrap().to_str().unwrap()));
    assert_eq!((*row_bytes as u64, *recovered, participant.as_str()), (bytes, false, "Ann"));
    assert_eq!(object_size(&storage, key).await, Some(bytes));
    let left: Vec<_> = std::fs::read_dir(archive.dir()).unwrap().collect();
    assert!(left.is_empty(), "neither the file nor its note stays in the spool: {left:?}");
    let packets: i64 = sqlx::query_scalar("select packets from recordings where id = $1")
        .bind(recording)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(packets, 90);
}

#[tokio::test]
async fn a_file_whose_upload_failed_stays_in_the_spool_until_a_take_over_uploads_and_registers_it() {
    let (db, recording) = recording_in_a_fresh_database().await;
    let spool = TempDir::new("archive");
    let unreachable = s3(&format!("missing-{}", Uuid::new_v4().simple()), &spool.0);
    let failing = Archive::new(db.clone(), unreachable, &spool.0, recording);
    let recorded = recorded(&failing, ann()).await;

    assert!(failing.keep(&recorded).await.is_err(), "the bucket does not exist");
    assert!(recorded.path.exists(), "the file stays");
    assert!(recorded.path.with_extension("json").exists(), "and so does its note");
    assert!(rows(&db, recording).await.is_empty());

    let storage = s3(&env("S3_BUCKET"), &spool.0);
    let taking_over = Archive::new(db.clone(), storage.clone(), &spool.0, recording);
    assert_eq!(taking_over.recover().await.unwrap(), 1);
    let rows = rows(&db, recording).await;
    assert_eq!(rows.len(), 1);
    let (key, bytes, recovered, participant) = &rows[0];
    assert_eq!((*recovered, participant.as_str()), (true, "Ann"), "registered from its note");
    assert_eq!(object_size(&storage, key).await, Some(*bytes as u64));
    assert!(std::fs::read_dir(taking_over.dir()).unwrap().next().is_none(), "the spool is empty");
}
