//! Ids the service hands out (sessions, messages): random (v4) UUIDs, in their canonical
//! hyphenated form only, so that one thing has one spelling in keys, URLs and logs.

/// A random number below `bound` (at least 1), from the same source as the ids: for the
/// choices that spread load (a shard, a backoff), not for secrets.
pub(crate) fn random_below(bound: u64) -> u64 {
    let bytes = uuid::Uuid::new_v4();
    let random = u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    random % bound.max(1)
}

/// Declares an id type and its parse error.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $error:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(uuid::Uuid);

        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error($what)]
        pub struct $error;

        impl $name {
            pub fn random() -> Self {
                $name(uuid::Uuid::new_v4())
            }

            pub fn parse(input: &str) -> Result<Self, $error> {
                if input.len() != 36 {
                    return Err($error);
                }
                let uuid = uuid::Uuid::try_parse(input).map_err(|_| $error)?;
                if uuid.get_version_num() != 4 {
                    return Err($error);
                }
                Ok($name(uuid))
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}
pub(crate) use random_id;
