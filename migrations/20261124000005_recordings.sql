-- Recordings of calls and their files (one per participant). A room's recordings go with the
-- room; the API removes their files from storage when it deletes them.
create table recordings (
    id                uuid primary key,
    room_id           uuid not null references rooms (id) on delete cascade,
    started_by        uuid references users (id) on delete set null,
    status            text not null default 'pending'
                      check (status in ('pending', 'starting', 'recording', 'finalizing', 'ready', 'partial', 'failed')),
    -- Why it failed or is partial.
    reason            text,
    -- The recorder instance working on it, while one is.
    recorder_id       text,
    stop_requested_at timestamptz,
    started_at        timestamptz,
    ended_at          timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);

-- At most one recording running per room: starting twice returns the running one, even when
-- two requests race.
create unique index recordings_one_active_idx on recordings (room_id)
    where status in ('pending', 'starting', 'recording');
create index recordings_room_idx on recordings (room_id, created_at desc, id desc);
create index recordings_created_idx on recordings (created_at desc, id desc);

create table recording_files (
    id           uuid primary key,
    recording_id uuid not null references recordings (id) on delete cascade,
    peer_id      text not null,
    user_id      uuid references users (id) on delete set null,
    participant  text not null,
    -- Relative to the recordings directory; written by the recorder only.
    path         text not null check (path !~ '(^/|\.\.)'),
    content_type text not null default 'video/webm',
    bytes        bigint not null default 0,
    duration_ms  bigint,
    codecs       text[] not null default '{}',
    sha256       text,
    created_at   timestamptz not null default now()
);
create index recording_files_recording_idx on recording_files (recording_id, created_at);
