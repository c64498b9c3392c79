-- Room settings for the media server (issue 16): how a room's call carries media, and who may
-- publish in it. Existing rooms get the defaults, which keep every limit they had.

-- `media`: `mesh` (peer to peer among everyone, for deployments without the SFU), `sfu` (through
-- confab-sfu), `auto` (peer to peer for two, the SFU from the third person on).
-- `mode`: `meeting` (everyone publishes) or `lecture` (the owner, the moderators and whoever a
-- moderator lets speak publish; everyone else watches).
alter table rooms
    add column media text not null default 'auto' check (media in ('mesh', 'sfu', 'auto')),
    add column mode  text not null default 'meeting' check (mode in ('meeting', 'lecture'));

-- The participant limit now depends on both (`participant_limit` in the API's domain/room.rs):
-- 8 for a mesh whatever the mode, 50 for a meeting, 1000 for a lecture.
alter table rooms drop constraint rooms_max_participants_check;
alter table rooms add constraint rooms_max_participants_check check (
    max_participants >= 2
    and max_participants <= case when media = 'mesh' then 8 when mode = 'lecture' then 1000 else 50 end
);
