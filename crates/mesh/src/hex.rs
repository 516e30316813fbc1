//! Bytes as text: the one place that writes and reads hex (keys, signatures, digests, sealed
//! secrets, ids), and the typed byte strings that travel as hex ([`hex_bytes!`], which makes
//! [`crate::authority::Key`] and its kin).

/// Lowercase hex of `bytes`.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    ::hex::encode(bytes)
}

/// The bytes of a hex string, in either case (people copy codes in capitals); `None` if it is
/// not hex.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    ::hex::decode(s).ok()
}

/// Exactly `N` bytes from hex, in either case; `None` if it is not hex or not that long.
pub fn decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    ::hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A lowercase hex digit's value (uppercase is not canonical in a signed entry).
pub(crate) fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A fixed-size byte string that is written as lowercase hex: `Debug` shows its first 12
/// digits, serde reads only canonical (lowercase) hex of exactly the right length, straight
/// from the borrowed text.
macro_rules! hex_bytes {
    ($name:ident, $n:expr, $what:expr) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            pub fn hex(&self) -> String {
                crate::hex::encode(self.0)
            }

            pub fn parse(s: &str) -> Result<$name, String> {
                crate::hex::decode_array::<$n>(s).map($name).ok_or_else(|| format!("{s:?} is not {}", $what))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", &self.hex()[..12])
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // Raw bytes in a binary form (what a hub keeps for itself, never what it signs).
                if s.is_human_readable() {
                    s.serialize_str(&self.hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                // Straight from the borrowed text into the array: a log of 100,000 entries has
                // half a million of these.
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{}", $what)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        let b = s.as_bytes();
                        let mut out = [0u8; $n];
                        if b.len() != 2 * $n {
                            return Err(E::custom(format!("{s:?} is not {}", $what)));
                        }
                        for (i, o) in out.iter_mut().enumerate() {
                            match (crate::hex::nibble(b[2 * i]), crate::hex::nibble(b[2 * i + 1])) {
                                (Some(h), Some(l)) => *o = h << 4 | l,
                                _ => return Err(E::custom(format!("{s:?} is not {}", $what))),
                            }
                        }
                        Ok($name(out))
                    }
                    fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<$name, E> {
                        <[u8; $n]>::try_from(b)
                            .map($name)
                            .map_err(|_| E::custom(format!("{} bytes are not {}", b.len(), $what)))
                    }
                }
                if d.is_human_readable() {
                    d.deserialize_str(V)
                } else {
                    d.deserialize_bytes(V)
                }
            }
        }
    };
}
pub(crate) use hex_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_names_nothing_that_is_not_hex() {
        assert_eq!(encode([0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode("00ABff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(decode("abc"), None);
        assert_eq!(decode("zz"), None);
        assert_eq!(decode_array::<2>("beef"), Some([0xbe, 0xef]));
        assert_eq!(decode_array::<2>("beefee"), None);
        assert_eq!(decode_array::<3>("beef"), None);
    }
}
