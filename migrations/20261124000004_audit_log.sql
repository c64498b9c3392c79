-- Append-only record of admin actions and of owner/moderator actions on membership. Actor and
-- target ids carry no foreign keys: the history outlives the accounts and rooms it mentions.
create table audit_log (
    id             bigint generated always as identity primary key,
    at             timestamptz not null default now(),
    actor_id       uuid,
    action         text not null,
    room_id        uuid,
    target_user_id uuid,
    request_id     text not null,
    details        jsonb not null default '{}'
);

create index audit_log_at_idx on audit_log (id desc);

create function audit_log_is_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'audit_log is append-only';
end;
$$;

create trigger audit_log_append_only
    before update or delete on audit_log
    for each row execute function audit_log_is_append_only();
