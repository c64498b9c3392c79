//! A camera for tests: `tests/rtsp/server.py`, GStreamer's RTSP server playing a test pattern
//! (and tone) as H.264 (or what its arguments say), on its own process, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Debian packages the RTSP test server needs (deploy/local/test installs them).
const PACKAGES: &str = "python3-gi gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 gstreamer1.0-plugins-base \
     gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-rtsp";

/// tests/rtsp/server.py, killed on drop.
pub struct RtspServer {
    child: Child,
    pub port: u16,
    args: Vec<String>,
    /// Killed and reaped already: its pid may belong to another process now.
    reaped: bool,
}

impl RtspServer {
    /// Starts a server with these extra arguments (e.g. `["--video", "mjpeg"]`) on any port.
    pub fn start(args: &[&str]) -> Self {
        Self::start_on(0, args.iter().map(|a| (*a).to_owned()).collect())
    }

    fn start_on(port: u16, args: Vec<String>) -> Self {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/rtsp/server.py");
        let python = std::env::var("RTSP_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let check = Command::new(&python)
            .args([
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
            ])
            .output();
        match check {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "{python} cannot load GStreamer's RTSP server bindings ({}): install {PACKAGES} \
                 (deploy/local/test does)",
                String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or_default()
            ),
            Err(e) => panic!("cannot run {python} ({e}): install {PACKAGES} (deploy/local/test does)"),
        }
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("ready ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                panic!("the RTSP test server did not start (args {args:?}): {other:?}; see its stderr above")
            }
        };
        Self { child, port, args, reaped: false }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Kills the server (as a crash would) and returns what restarts it on the same port.
    pub fn kill(mut self) -> Stopped {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
        Stopped { port: self.port, args: std::mem::take(&mut self.args) }
    }

    /// SIGSTOP / SIGCONT: the connection stays open but nothing arrives.
    pub fn pause(&self, paused: bool) {
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }
}

pub struct Stopped {
    port: u16,
    args: Vec<String>,
}

impl Stopped {
    pub fn restart(self) -> RtspServer {
        RtspServer::start_on(self.port, self.args)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
