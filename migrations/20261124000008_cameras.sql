-- IP cameras in calls (RTSP ingest). Room managers register cameras through the API; the ingest
-- worker (services/ingest) polls this table, connects to each camera and reports what it sees in
-- camera_status. A change here takes effect at the worker's next poll.

create table cameras (
    id          uuid primary key,
    room_id     uuid not null references rooms (id) on delete cascade,
    name        text not null,
    -- rtsp:// or rtsps://, checked against the SSRF guard (confab_common::camera_url) when stored
    -- and again by the worker before each connection. Never contains credentials.
    rtsp_url    text not null,
    -- Null when the camera needs none; otherwise JSON {"username": ..., "password": ...} sealed
    -- with CONFAB_CAMERA_KEY (confab_common::secret_box: AES-256-GCM, nonce ‖ ciphertext ‖ tag).
    -- Never returned by the API.
    credentials bytea,
    created_by  uuid references users (id) on delete set null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create index cameras_room_idx on cameras (room_id);

-- Written by the ingest worker only, read by the API. No row means the worker has not picked the
-- camera up yet: the API reports it as 'idle'.
create table camera_status (
    camera_id    uuid primary key references cameras (id) on delete cascade,
    state        text not null check (state in ('idle', 'connecting', 'connected', 'failed')),
    codec        text,
    width        integer,
    height       integer,
    frame_rate   real,
    bitrate_kbps integer,
    -- What happens to the camera's audio, e.g. 'pcmu' (forwarded) or 'aac (not forwarded)'.
    audio        text,
    -- Shown to every member of the room: must never contain the URL or credentials.
    last_error   text,
    reconnects   integer not null default 0,
    -- The worker instance that holds the camera.
    worker_id    text,
    updated_at   timestamptz not null default now()
);
