//! Ids of rooms, users, cameras, recordings and recording files: one newtype over a UUID, told
//! apart by a marker type, so a room id can never be passed where a user id belongs and no service
//! keeps its own copy. On the wire (JSON, Redis, tickets) an id is its UUID's hyphenated string.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::DomainError;

/// What an id names; implemented by the marker types in [`kind`].
pub trait IdKind {
    /// The id's type name (`RoomId`), in debug output and the API description.
    const NAME: &'static str;
    /// What the id names (`room`), in error messages.
    const NOUN: &'static str;
    /// What the id is, for the API description.
    const DESCRIPTION: &'static str;
}

/// The marker types: never built, they only tell ids apart.
pub mod kind {
    use super::IdKind;

    macro_rules! kinds {
        ($($marker:ident => $name:literal, $noun:literal, $description:literal;)*) => {$(
            #[doc = $description]
            #[derive(Debug)]
            pub enum $marker {}

            impl IdKind for $marker {
                const NAME: &'static str = $name;
                const NOUN: &'static str = $noun;
                const DESCRIPTION: &'static str = $description;
            }
        )*};
    }

    // The descriptions are those the API description has always given.
    kinds! {
        Room => "RoomId", "room", "The id of a room: a random UUIDv4 (122 random bits), so ids cannot be guessed.";
        User => "UserId", "user", "The id of a user. A newtype so a room id can never be passed where a user id belongs.";
        Camera => "CameraId", "camera", "The id of a camera: a random UUIDv4.";
        Recording => "RecordingId", "recording", "The id of a recording: a random UUIDv4.";
        RecordingFile => "RecordingFileId", "recording file", "The id of one file of a recording: a random UUIDv4.";
    }
}

pub type RoomId = Id<kind::Room>;
pub type UserId = Id<kind::User>;
pub type CameraId = Id<kind::Camera>;
pub type RecordingId = Id<kind::Recording>;
pub type RecordingFileId = Id<kind::RecordingFile>;

/// The id of a `T`: a UUID, random (v4) when this system makes it, so ids cannot be guessed.
pub struct Id<T> {
    uuid: Uuid,
    kind: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    /// A fresh random (v4) id.
    pub fn random() -> Self {
        Self::from_uuid(Uuid::new_v4())
    }

    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self { uuid, kind: PhantomData }
    }

    pub const fn uuid(self) -> Uuid {
        self.uuid
    }
}

impl<T: IdKind> Id<T> {
    /// Reads an id from text: any UUID form; anything else is [`DomainError::InvalidId`].
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Uuid::parse_str(raw).map(Self::from_uuid).map_err(|_| DomainError::InvalidId { kind: T::NOUN })
    }
}

impl<T: IdKind> FromStr for Id<T> {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        Self::parse(raw)
    }
}

impl<T> fmt::Display for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uuid.fmt(f)
    }
}

impl<T: IdKind> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", T::NAME, self.uuid)
    }
}

// By hand rather than derived: a derive would ask the marker `T` for the trait too.
impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Id<T> {}

impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl<T> Eq for Id<T> {}

impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Id<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.uuid.cmp(&other.uuid)
    }
}

impl<T> Hash for Id<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
    }
}

impl<T> Serialize for Id<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.uuid.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Id<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Uuid::deserialize(deserializer).map(Self::from_uuid)
    }
}

/// Stored as Postgres `uuid`, exactly as a bare [`Uuid`].
#[cfg(feature = "sqlx")]
mod postgres {
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef, Postgres};
    use sqlx::{Decode, Encode, Type};
    use uuid::Uuid;

    use super::Id;

    impl<T> Type<Postgres> for Id<T> {
        fn type_info() -> PgTypeInfo {
            <Uuid as Type<Postgres>>::type_info()
        }
    }

    impl<T> PgHasArrayType for Id<T> {
        fn array_type_info() -> PgTypeInfo {
            <Uuid as PgHasArrayType>::array_type_info()
        }
    }

    impl<T> Encode<'_, Postgres> for Id<T> {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            <Uuid as Encode<Postgres>>::encode_by_ref(&self.uuid, buf)
        }
    }

    impl<T> Decode<'_, Postgres> for Id<T> {
        fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
            <Uuid as Decode<Postgres>>::decode(value).map(Self::from_uuid)
        }
    }
}

/// Described in the API's OpenAPI document as a UUID string, under the id's own name.
#[cfg(feature = "openapi")]
mod openapi {
    use std::borrow::Cow;

    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{RefOr, Schema};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Id, IdKind};

    impl<T: IdKind> PartialSchema for Id<T> {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                .description(Some(T::DESCRIPTION))
                .into()
        }
    }

    impl<T: IdKind> ToSchema for Id<T> {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed(T::NAME)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "6d5c1a4e-2f0b-4c55-9d3e-0a1b2c3d4e5f";

    #[test]
    fn an_id_reads_and_prints_as_its_uuid() {
        let id: RoomId = RAW.parse().unwrap();
        assert_eq!(id.to_string(), RAW);
        assert_eq!(format!("{id:?}"), format!("RoomId({RAW})"));
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{RAW}\""));
        assert_eq!(serde_json::from_str::<RoomId>(&format!("\"{RAW}\"")).unwrap(), id);
    }

    #[test]
    fn what_is_not_a_uuid_is_no_id_and_the_error_names_the_kind() {
        for raw in ["", "1", "../etc", "' or 1=1", "00000000-0000-0000-0000-00000000000g"] {
            let error = raw.parse::<CameraId>().unwrap_err();
            assert_eq!(error, DomainError::InvalidId { kind: "camera" }, "{raw}");
        }
        assert!(serde_json::from_str::<UserId>("\"nope\"").is_err());
    }

    #[test]
    fn random_ids_differ_and_order_by_their_uuid() {
        let (a, b) = (UserId::random(), UserId::random());
        assert_ne!(a, b);
        assert_eq!(a.cmp(&b), a.uuid().cmp(&b.uuid()));
    }
}
