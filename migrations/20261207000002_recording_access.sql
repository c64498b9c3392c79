-- Recordings outlive their room (issue 15): deleting a room keeps its recordings unless the
-- request asks for them to go too, and each recording keeps its own list of who may see it.

-- A recording keeps the id of the room it was made in, without a foreign key: like the audit
-- log and webhook_room_sequences, it is history that outlives the room. The id stays not null,
-- so the recorder, the webhook events and the API still name the room a recording came from,
-- and no room can ever be created again under a deleted room's id (ids are random UUIDs).
alter table recordings drop constraint recordings_room_id_fkey;

-- Who may see a recording: the room's members while it was recorded, with their role then
-- (owners and moderators may stop and delete it once the room is gone). While the room exists
-- its current members see its recordings too; this list is what remains when it is deleted.
create table recording_access (
    recording_id uuid not null references recordings (id) on delete cascade,
    user_id      uuid not null references users (id) on delete cascade,
    role         text not null check (role in ('owner', 'moderator', 'member')),
    primary key (recording_id, user_id)
);

-- "Recordings I may see", for the listing.
create index recording_access_user_idx on recording_access (user_id, recording_id);

-- The list is written by the database, like webhook events, so every path that creates a
-- recording or adds a member (API route, invite, CLI) keeps it: a new recording gets the room's
-- members, and a member who joins (or whose role changes) while a recording runs is added.
create function confab_recording_access_from_room() returns trigger language plpgsql as $$
begin
    insert into recording_access (recording_id, user_id, role)
        select new.id, m.user_id, m.role from room_members m where m.room_id = new.room_id;
    return new;
end
$$;

create trigger recordings_access_from_room after insert on recordings
    for each row execute function confab_recording_access_from_room();

create function confab_recording_access_for_member() returns trigger language plpgsql as $$
begin
    insert into recording_access (recording_id, user_id, role)
        select r.id, new.user_id, new.role from recordings r
         where r.room_id = new.room_id and r.status in ('pending', 'starting', 'recording')
    on conflict (recording_id, user_id) do update set role = excluded.role;
    return new;
end
$$;

create trigger room_members_recording_access after insert or update of role on room_members
    for each row execute function confab_recording_access_for_member();

-- Recordings made before this migration: the room's members now stand for its members then.
insert into recording_access (recording_id, user_id, role)
    select r.id, m.user_id, m.role from recordings r join room_members m on m.room_id = r.room_id;
