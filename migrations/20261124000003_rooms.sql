-- Private rooms. The owner is also a row in room_members (role 'owner'), so "may this user see
-- this room" is always one primary-key lookup.
create table rooms (
    id               uuid primary key,
    name             text not null,
    owner_id         uuid not null references users (id) on delete cascade,
    max_participants integer not null check (max_participants between 2 and 50),
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table room_members (
    room_id    uuid not null references rooms (id) on delete cascade,
    user_id    uuid not null references users (id) on delete cascade,
    role       text not null check (role in ('owner', 'moderator', 'member')),
    created_at timestamptz not null default now(),
    primary key (room_id, user_id)
);

-- "Rooms I belong to", newest first, for keyset pagination.
create index room_members_user_idx on room_members (user_id);
create index rooms_created_idx on rooms (created_at desc, id desc);

-- A banned user is not a member and cannot come back through an invite.
create table room_bans (
    room_id    uuid not null references rooms (id) on delete cascade,
    user_id    uuid not null references users (id) on delete cascade,
    banned_by  uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    primary key (room_id, user_id)
);

-- Invites: the token (≥128 random bits) is shown once and stored only as its SHA-256.
create table invites (
    id         uuid primary key,
    room_id    uuid not null references rooms (id) on delete cascade,
    token_hash bytea not null unique,
    created_by uuid references users (id) on delete set null,
    max_uses   integer not null check (max_uses between 1 and 1000),
    uses       integer not null default 0 check (uses <= max_uses),
    expires_at timestamptz not null,
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);

create index invites_room_idx on invites (room_id, created_at desc);
