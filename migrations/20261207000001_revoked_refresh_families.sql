-- Access tokens carry their refresh family (`fam`), and every authenticated request asks whether
-- that family has been revoked (reuse detection, logout). This partial index answers it with one
-- probe instead of a walk over every rotation of a long-lived login.
create index refresh_tokens_revoked_family_idx on refresh_tokens (family_id) where revoked_at is not null;
