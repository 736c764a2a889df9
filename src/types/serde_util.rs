//! Serde helpers that keep one type right for both of its encodings: JSON for the API (where Go
//! clients send `null` for an empty map and leave out empty fields) and the positional binary
//! encoding of `crate::codec` (where every field is always present, in order).
//!
//! Each helper branches on `is_human_readable()`, which is true for JSON and false for bincode,
//! so the binary form stays exactly what the derive would have produced.

use serde::{Deserialize, Deserializer};

/// `deserialize_with` for maps and lists: JSON `null` reads as the empty value, as Go's
/// `encoding/json` writes a nil map or slice (`"Labels": null` in `docker swarm init`'s body).
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    if deserializer.is_human_readable() {
        Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
    } else {
        T::deserialize(deserializer)
    }
}
