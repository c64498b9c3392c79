-- What the recorder saw of a recording (summed over its participants, kept across a take-over by
-- another recorder), and which files were rebuilt from what a crashed recorder left on disk.
alter table recordings
    add column packets           bigint not null default 0,
    add column packets_lost      bigint not null default 0,
    add column keyframe_requests bigint not null default 0,
    -- The largest correction RTCP sender reports made to a track's timing: how far audio and
    -- video would have drifted apart without them.
    add column av_drift_ms       bigint not null default 0;

alter table recording_files
    add column recovered boolean not null default false;
create index recordings_running_idx on recordings (updated_at)
    where status in ('pending', 'starting', 'recording', 'finalizing');
