//! What a worker tells about a camera it pulls (the `camera_status` row, read by the API).

/// The camera's state as operators see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum State {
    /// Nobody pulls it: no call in its room.
    #[default]
    Idle,
    /// A connection is being set up.
    Connecting,
    /// Frames are arriving.
    Connected,
    /// The last attempt failed (`last_error` says why); the worker retries with backoff.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Failed => "failed",
        }
    }
}

/// One camera's status row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraStatus {
    pub state: State,
    /// The video codec (`h264`), or the unsupported one the camera offered.
    pub codec: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// Frames per second over the last few seconds.
    pub frame_rate: Option<f32>,
    pub bitrate_kbps: Option<i32>,
    /// The audio codec (`pcmu`, `pcma`), `none`, or e.g. `aac (not forwarded)`.
    pub audio: Option<String>,
    /// Why the last attempt failed; kept while reconnecting so the reason stays visible.
    pub last_error: Option<String>,
    /// Connection attempts after the first since this worker took the camera.
    pub reconnects: i32,
}
