-- Webhooks: endpoints operators register, an outbox of events, and one delivery per (endpoint,
-- event) with every attempt kept. Events are written by triggers and by `confab_emit_event`, so
-- an event commits in the same transaction as the change it reports, whichever process makes
-- it (API, recorder, `confab-api` commands); the API's delivery workers send them afterwards.

create table webhook_endpoints (
    id          uuid primary key,
    url         text not null,
    -- `whsec_` + base64 of the HMAC-SHA256 key (Standard Webhooks). Never returned after creation.
    secret      text not null,
    -- Event types this endpoint wants; empty means every type.
    events      text[] not null default '{}',
    -- A paused endpoint's deliveries wait, and are sent when it is resumed.
    active      boolean not null default true,
    description text not null default '',
    -- Attempts in a row that failed, and when the endpoint may be tried again. While it fails it
    -- gets one delivery at a time (a probe), so a receiver that is down costs one attempt per
    -- retry wait rather than one per waiting event, and cannot tie up the senders.
    failures    integer not null default 0,
    retry_at    timestamptz,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table webhook_events (
    id         uuid primary key,
    type       text not null,
    room_id    uuid,
    -- 1, 2, 3, … per room, in commit order of the changes: receivers order a room's events by it.
    room_seq   bigint,
    payload    jsonb not null,
    -- Where an event that arrived from elsewhere came from (a Redis Stream entry id), so that a
    -- redelivered entry is not recorded twice.
    source     text unique,
    created_at timestamptz not null default now()
);

create index webhook_events_created_idx on webhook_events (created_at);

-- The last sequence number given out per room; kept after the room is deleted, since events
-- about it (participants leaving) can still follow.
create table webhook_room_sequences (
    room_id uuid primary key,
    seq     bigint not null
);

create table webhook_deliveries (
    id              uuid primary key,
    endpoint_id     uuid not null references webhook_endpoints (id) on delete cascade,
    event_id        uuid not null references webhook_events (id) on delete cascade,
    status          text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts        integer not null default 0,
    -- When a worker may next take it: the retry time, or the end of a worker's lease on it.
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz not null default now(),
    unique (endpoint_id, event_id)
);

create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, created_at desc, id desc);

create table webhook_attempts (
    id           bigserial primary key,
    delivery_id  uuid not null references webhook_deliveries (id) on delete cascade,
    at           timestamptz not null default now(),
    -- The receiver's HTTP status, or null when no response came (refused, timed out, TLS error).
    status_code  integer,
    error        text,
    duration_ms  integer not null
);

create index webhook_attempts_delivery_idx on webhook_attempts (delivery_id, id);

-- Records an event and queues it for every endpoint that wants its type (a paused endpoint
-- gets its queue when resumed). Returns the event id, or null when `p_source` was recorded before.
create function confab_emit_event(p_type text, p_room uuid, p_payload jsonb, p_source text default null)
returns uuid language plpgsql as $$
declare
    event_id uuid := gen_random_uuid();
    seq bigint;
begin
    if p_source is not null and exists (select 1 from webhook_events where source = p_source) then
        return null;
    end if;
    if p_room is not null then
        insert into webhook_room_sequences as s (room_id, seq) values (p_room, 1)
            on conflict (room_id) do update set seq = s.seq + 1
            returning s.seq into seq;
    end if;
    insert into webhook_events (id, type, room_id, room_seq, payload, source)
        values (event_id, p_type, p_room, seq, p_payload, p_source);
    insert into webhook_deliveries (id, endpoint_id, event_id)
        select gen_random_uuid(), e.id, event_id
          from webhook_endpoints e
         where cardinality(e.events) = 0 or p_type = any (e.events);
    if found then
        -- Wakes the delivery workers at commit (one notification per transaction).
        perform pg_notify('confab_webhooks', '');
    end if;
    return event_id;
end
$$;

create function confab_room_event() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform confab_emit_event('room.created', new.id, jsonb_build_object('room', jsonb_build_object(
            'id', new.id, 'name', new.name, 'owner_id', new.owner_id,
            'max_participants', new.max_participants, 'created_at', new.created_at)));
        return new;
    end if;
    perform confab_emit_event('room.deleted', old.id, jsonb_build_object('room', jsonb_build_object(
        'id', old.id, 'name', old.name, 'owner_id', old.owner_id)));
    return old;
end
$$;

create trigger rooms_webhook_events after insert or delete on rooms
    for each row execute function confab_room_event();

create function confab_user_event() returns trigger language plpgsql as $$
begin
    perform confab_emit_event('user.created', null, jsonb_build_object('user', jsonb_build_object(
        'id', new.id, 'email', new.email, 'display_name', new.display_name, 'role', new.role,
        'created_at', new.created_at)));
    return new;
end
$$;

create trigger users_webhook_events after insert on users
    for each row execute function confab_user_event();

-- `recording.started` once, when media capture first begins (a take-over does not repeat it);
-- `recording.ready` for `ready` and `partial` (the payload says which), `recording.failed`.
create function confab_recording_event() returns trigger language plpgsql as $$
declare
    recording jsonb := jsonb_build_object(
        'id', new.id, 'room_id', new.room_id, 'started_by', new.started_by, 'status', new.status,
        'reason', new.reason, 'started_at', new.started_at, 'ended_at', new.ended_at);
begin
    if new.status = 'recording' and old.started_at is null then
        perform confab_emit_event('recording.started', new.room_id, jsonb_build_object('recording', recording));
    elsif new.status in ('ready', 'partial') then
        perform confab_emit_event('recording.ready', new.room_id, jsonb_build_object(
            'recording', recording,
            'files', coalesce((select jsonb_agg(jsonb_build_object(
                                  'id', f.id, 'participant', f.participant, 'user_id', f.user_id,
                                  'bytes', f.bytes, 'duration_ms', f.duration_ms, 'codecs', f.codecs)
                                  order by f.created_at)
                                 from recording_files f where f.recording_id = new.id), '[]'::jsonb)));
    elsif new.status = 'failed' then
        perform confab_emit_event('recording.failed', new.room_id, jsonb_build_object('recording', recording));
    end if;
    return new;
end
$$;

create trigger recordings_webhook_events after update of status on recordings
    for each row when (old.status is distinct from new.status)
    execute function confab_recording_event();
