//! Keyset pagination. A cursor names the last item of a page by (created_at, id); the next page
//! holds what sorts strictly after it, so rows inserted meanwhile never shift or repeat items.
//! A cursor is plain text, `{microseconds since 1970}_{uuid}`, so that the API description can
//! say exactly which strings are cursors.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `?limit=&cursor=` as sent by the client.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` from the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub cursor: Option<String>,
}

/// The position after which a page starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.id)
    }

    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::invalid("invalid_cursor", "cursor is not one this server issued");
        let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
        let created_at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
        Ok(Self { created_at, id: Uuid::parse_str(id).map_err(|_| bad())? })
    }
}

/// A validated page request.
pub struct Page {
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl Page {
    pub fn parse(query: &PageQuery) -> Result<Self, ApiError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid("invalid_limit", format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        Ok(Self { limit, after: query.cursor.as_deref().map(Cursor::decode).transpose()? })
    }

    /// Fetch one row more than the limit: its presence says whether a next page exists.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch_limit`]) to the page and computes the next cursor.
    pub fn finish<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> Cursor) -> (Vec<T>, Option<String>) {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next = if more { rows.last().map(|r| cursor_of(r).encode()) } else { None };
        (rows, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_a_400() {
        let cursor =
            Cursor { created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(), id: Uuid::new_v4() };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for raw in ["", "!!!", "bm9wZQ", "1_not-a-uuid", "x_6d5c1a4e-2f0b-4c55-9d3e-0a1b2c3d4e5f"] {
            assert!(matches!(Cursor::decode(raw), Err(ApiError::Invalid { code: "invalid_cursor", .. })), "{raw}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert!(Page::parse(&PageQuery { limit: Some(0), cursor: None }).is_err());
        assert!(Page::parse(&PageQuery { limit: Some(201), cursor: None }).is_err());
        assert_eq!(Page::parse(&PageQuery { limit: None, cursor: None }).unwrap().limit, 50);
    }

    #[test]
    fn a_next_cursor_is_given_only_when_more_rows_exist() {
        let page = Page { limit: 2, after: None };
        let at = DateTime::from_timestamp_micros(0).unwrap();
        let cursor_of = |id: &Uuid| Cursor { created_at: at, id: *id };
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let (rows, next) = page.finish(ids.clone(), cursor_of);
        assert_eq!(rows.len(), 2);
        assert_eq!(next, Some(cursor_of(&ids[1]).encode()));
        let (rows, next) = page.finish(ids[..2].to_vec(), cursor_of);
        assert_eq!((rows.len(), next), (2, None));
    }
}
