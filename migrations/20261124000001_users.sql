-- Accounts. Emails are stored normalized (trimmed, lower-cased) by the API, so a plain unique
-- constraint is enough. password_hash is an argon2id PHC string.
create table users (
    id            uuid primary key,
    email         text not null unique,
    display_name  text not null,
    password_hash text not null,
    role          text not null default 'user' check (role in ('user', 'admin')),
    -- Set while the account is disabled: no login, no refresh, access tokens refused.
    disabled_at   timestamptz,
    -- Bumped to invalidate every access token at once (logout, password change, disable).
    token_version integer not null default 0,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
