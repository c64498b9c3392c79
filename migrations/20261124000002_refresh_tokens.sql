-- Refresh tokens: opaque 256-bit secrets stored only as SHA-256 hashes. Each use rotates the
-- token; all tokens descending from one login share a family, which is revoked as a whole when
-- an already-rotated token is presented again (theft detection, RFC 9700 §4.14.2).
create table refresh_tokens (
    token_hash bytea primary key,
    family_id  uuid not null,
    user_id    uuid not null references users (id) on delete cascade,
    created_at timestamptz not null default now(),
    -- Absolute end of the family: rotation never extends it.
    expires_at timestamptz not null,
    rotated_at timestamptz,
    revoked_at timestamptz
);

create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_user_idx on refresh_tokens (user_id) where revoked_at is null;
