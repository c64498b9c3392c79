//! Both storages against the real thing: a temporary directory, and the S3-compatible server that
//! `deploy/local/test` starts (`S3_ENDPOINT`, bucket `S3_BUCKET`). Files go in, come back by
//! range, and go away by recording.

use std::path::PathBuf;

use confab_storage::{Key, S3, Storage, StorageSettings};
use confab_testkit::{env, s3_settings};
use futures_util::TryStreamExt;
use uuid::Uuid;

/// A temporary recordings directory, removed on drop.
struct Spool(PathBuf);

impl Spool {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("confab-storage-test-{}", Uuid::new_v4().simple())))
    }

    /// Writes `content` as the recorder would: at the key's place in the directory.
    fn write(&self, key: &Key, content: &[u8]) -> PathBuf {
        let path = key.in_dir(&self.0);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(settings: &StorageSettings, spool: &Spool) -> Storage {
    Storage::open(settings, &spool.0).unwrap()
}

fn s3(storage: &Storage) -> &S3 {
    match storage {
        Storage::S3(s3) => s3,
        Storage::Local(_) => panic!("expected S3"),
    }
}

fn key(recording: Uuid, file: &str) -> Key {
    Key::parse(format!("{recording}/{file}.webm")).unwrap()
}

async fn read(s3: &S3, key: &Key, range: std::ops::Range<u64>) -> Vec<u8> {
    let chunks: Vec<bytes::Bytes> = s3.read(key, range).try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test]
async fn a_file_larger_than_a_part_is_uploaded_in_parts_the_local_copy_removed_and_read_back_by_range() {
    let spool = Spool::new();
    let storage = open(&s3_settings(&env("S3_BUCKET")), &spool);
    let content: Vec<u8> =
        (0..17 * 1024 * 1024 + 123u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let key = key(Uuid::new_v4(), "big");
    let local = spool.write(&key, &content);

    storage.store(&key, &local).await.unwrap();
    assert!(!local.exists(), "the spooled copy is removed once uploaded");
    let meta = s3(&storage).head(&key).await.unwrap().expect("the object is there");
    assert_eq!(meta.size, content.len() as u64);
    let etag = meta.e_tag.unwrap();
    assert!(etag.ends_with("-3\""), "three 8 MiB parts make a multipart ETag: {etag}");

    assert_eq!(read(s3(&storage), &key, 0..meta.size).await, content, "whole, across read chunks");
    let mib8 = 8 * 1024 * 1024;
    assert_eq!(read(s3(&storage), &key, mib8 - 10..mib8 + 10).await, content[mib8 as usize - 10..mib8 as usize + 10]);
    assert_eq!(read(s3(&storage), &key, 5..6).await, [content[5]]);
    assert_eq!(s3(&storage).head(&key_of_nothing()).await.unwrap().map(|m| m.size), None);
}

fn key_of_nothing() -> Key {
    key(Uuid::new_v4(), "nothing")
}

#[tokio::test]
async fn a_failed_upload_keeps_the_local_file() {
    let spool = Spool::new();
    let storage = open(&s3_settings(&format!("missing-{}", Uuid::new_v4().simple())), &spool);
    let key = key(Uuid::new_v4(), "kept");
    let local = spool.write(&key, b"media");
    assert!(storage.store(&key, &local).await.is_err(), "the bucket does not exist");
    assert_eq!(std::fs::read(&local).unwrap(), b"media");
}

#[tokio::test]
async fn deleting_a_recording_removes_its_objects_and_no_others() {
    let spool = Spool::new();
    let storage = open(&s3_settings(&env("S3_BUCKET")), &spool);
    let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
    let keys = [key(gone, "a"), key(gone, "b"), key(kept, "c")];
    for key in &keys {
        storage.store(key, &spool.write(key, b"media")).await.unwrap();
    }
    storage.delete_all_under(&Key::parse(gone.to_string()).unwrap()).await.unwrap();
    let held = |key: &Key| {
        let storage = storage.clone();
        let key = key.clone();
        async move { s3(&storage).head(&key).await.unwrap().is_some() }
    };
    assert_eq!((held(&keys[0]).await, held(&keys[1]).await, held(&keys[2]).await), (false, false, true));
    storage.delete_all_under(&Key::parse(gone.to_string()).unwrap()).await.expect("nothing left is no error");
}

#[tokio::test]
async fn a_local_directory_keeps_files_in_place_and_deletes_by_recording() {
    let spool = Spool::new();
    let storage = open(&StorageSettings::Local, &spool);
    let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
    let (gone_file, kept_file) = (key(gone, "a"), key(kept, "b"));
    let gone_path = spool.write(&gone_file, b"media");
    let kept_path = spool.write(&kept_file, b"media");
    storage.store(&gone_file, &gone_path).await.unwrap();
    assert_eq!(std::fs::read(&gone_path).unwrap(), b"media", "stored where the recorder wrote it");

    storage.delete_all_under(&Key::parse(gone.to_string()).unwrap()).await.unwrap();
    assert!(!spool.0.join(gone.to_string()).exists());
    assert!(kept_path.exists());
    storage.delete_all_under(&Key::parse(gone.to_string()).unwrap()).await.expect("nothing left is no error");
}
