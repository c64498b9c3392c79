//! The `confab-api` binary as an operator meets it: configuration errors name the variable,
//! logs are JSON when asked, SIGTERM shuts down cleanly, and `admin create` reads stdin.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use confab_testkit::{TestKeys, env, eventually, fresh_database};

const BIN: &str = env!("CARGO_BIN_EXE_confab-api");

/// How long the binary may take to exit once told to stop.
const SHUTDOWN: Duration = Duration::from_secs(10);

/// A clean environment with a valid configuration (and a fresh database) for the binary.
async fn base_env(cmd: &mut Command) -> &mut Command {
    let (_, database_url) = fresh_database().await;
    cmd.env_clear()
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", env("REDIS_URL"))
        .env("CONFAB_JWT_KEY", TestKeys::default().pem)
        .env("CONFAB_BIND", "127.0.0.1:0")
}

/// The running binary, killed if the test ends while it still runs (a failed assertion).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn failing_start(extra: &[(&str, &str)], remove: Option<&str>) -> String {
    let mut cmd = Command::new(BIN);
    base_env(&mut cmd).await.arg("serve");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    if let Some(key) = remove {
        cmd.env_remove(key);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "started despite bad configuration");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[actix_web::test]
async fn bad_configuration_stops_start_up_with_the_variable_named() {
    assert!(failing_start(&[("CONFAB_LOG_FORMAT", "yaml")], None).await.contains("CONFAB_LOG_FORMAT"));
    assert!(failing_start(&[("CONFAB_BINDD", "x")], None).await.contains("CONFAB_BINDD"));
    assert!(failing_start(&[("CONFAB_HASH_WORKERS", "0")], None).await.contains("CONFAB_HASH_WORKERS"));
    assert!(failing_start(&[("CONFAB_JWT_KEY", "not a key")], None).await.contains("CONFAB_JWT_KEY"));
    assert!(failing_start(&[], Some("CONFAB_JWT_KEY")).await.contains("CONFAB_JWT_KEY"));
    let stderr = failing_start(&[("DATABASE_URL", "mysql://u:hunter2@h/db")], None).await;
    assert!(stderr.contains("DATABASE_URL") && !stderr.contains("hunter2"), "{stderr}");
}

#[actix_web::test]
async fn bad_storage_configuration_stops_start_up_without_echoing_the_secret() {
    let s3 = [("CONFAB_STORAGE", "s3"), ("CONFAB_S3_BUCKET", "recordings")];
    assert!(failing_start(&[("CONFAB_STORAGE", "nfs")], None).await.contains("CONFAB_STORAGE"));
    assert!(failing_start(&s3[..1], None).await.contains("CONFAB_S3_BUCKET"));
    let plain_http = [s3[0], s3[1], ("CONFAB_S3_ENDPOINT", "http://127.0.0.1:9")];
    assert!(failing_start(&plain_http, None).await.contains("CONFAB_S3_ALLOW_HTTP"));
    let half_keys = [s3[0], s3[1], ("CONFAB_S3_SECRET_ACCESS_KEY", "hunter2")];
    let stderr = failing_start(&half_keys, None).await;
    assert!(stderr.contains("CONFAB_S3_ACCESS_KEY_ID") && !stderr.contains("hunter2"), "{stderr}");
}

#[actix_web::test]
async fn serves_json_logs_and_shuts_down_cleanly_on_sigterm() {
    let mut child = Running(
        base_env(&mut Command::new(BIN))
            .await
            .env("CONFAB_LOG_FORMAT", "json")
            .arg("serve")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(&line).expect("every log line is JSON");
            (event["message"] == "confab-api listening").then(|| event["port"].as_u64().unwrap())
        })
        .expect("the listening line is logged");
    // Once a request is served the server runs, and with it the SIGTERM handler.
    let client = awc::Client::default();
    let healthz = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert!(healthz.status().is_success());
    let killed = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let exited =
        eventually("the API to exit after SIGTERM", SHUTDOWN, || std::future::ready(child.0.try_wait().unwrap())).await;
    assert!(exited.success(), "graceful shutdown exits 0, got {exited}");
}

#[actix_web::test]
async fn admin_create_reads_the_password_from_stdin() {
    let email = format!("root-{}@example.org", uuid::Uuid::new_v4().simple());
    let mut child = base_env(&mut Command::new(BIN))
        .await
        .args(["admin", "create", "--email", &email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a long admin password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("created admin {email}")));
}
