//! [`Key`]s and the [`MakeKey`] hook that picks one per request.

use std::{
    fmt,
    hash::Hash,
    net::{IpAddr, SocketAddr},
};

use http::{HeaderName, Request};

/// The longest key kept byte for byte (its kind tag included). A longer key is kept as its
/// first 54 bytes and a 64-bit hash of the whole, so a key costs at most this much memory
/// whatever the client sends.
pub const MAX_KEY_LEN: usize = 64;

/// The prefix of a key longer than [`MAX_KEY_LEN`] that is kept as is.
const KEY_PREFIX: usize = MAX_KEY_LEN - 9;

/// Bytes stored inline (no allocation): an IPv6 address with its tag fits.
const INLINE: usize = 22;

/// What a request is counted under: a client address, a header value, a principal's id, or any
/// bytes a closure picks. At most [`MAX_KEY_LEN`] bytes are kept (longer keys are shortened
/// with a hash), and short keys are stored without allocating.
///
/// See the [module docs](super) for an example.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    /// A key from any bytes; the domain tag keeps keys of different kinds apart (a header value
    /// never collides with an address).
    fn tagged(tag: u8, bytes: &[u8]) -> Self {
        let len = bytes.len() + 1;
        if len <= INLINE {
            let mut inline = [0; INLINE];
            inline[0] = tag;
            inline[1..len].copy_from_slice(bytes);
            return Self(Repr::Inline {
                len: u8::try_from(len).expect("INLINE fits in a u8"),
                bytes: inline,
            });
        }
        if len <= MAX_KEY_LEN {
            let mut heap = Vec::with_capacity(len);
            heap.push(tag);
            heap.extend_from_slice(bytes);
            return Self(Repr::Heap(heap.into_boxed_slice()));
        }
        // Too long: a prefix for readability, the length and a hash of the whole for identity.
        // SipHash-2-4 written out with fixed keys: the same on every build and toolchain, so
        // every process of a deployment (and a shared store) agrees, across a rolling deploy
        // too (std's `DefaultHasher` promises no such thing).
        let hash = siphash24(bytes);
        let mut heap = Vec::with_capacity(MAX_KEY_LEN);
        heap.push(tag | 0x80);
        heap.extend_from_slice(&bytes[..KEY_PREFIX - 1]);
        heap.push(b'#');
        heap.extend_from_slice(&hash.to_be_bytes());
        Self(Repr::Heap(heap.into_boxed_slice()))
    }

    /// A key made of arbitrary bytes (a closure's choice).
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::tagged(b'b', bytes)
    }

    /// The key of a client address. IPv4 addresses count one by one; IPv6 addresses count by
    /// their `/64` network (one client usually holds a whole `/64`, so counting single
    /// addresses would let it rotate through them). An IPv4-mapped IPv6 address counts as the
    /// IPv4 address.
    #[must_use]
    pub fn ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::tagged(b'4', &v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::tagged(b'4', &v4.octets()),
                None => Self::tagged(b'6', &v6.octets()[..8]),
            },
        }
    }

    /// The key requests without a key share (e.g. no client address, no header).
    #[must_use]
    pub fn anonymous() -> Self {
        Self::tagged(b'-', b"")
    }

    /// Whether this is [`Key::anonymous`].
    pub(crate) fn is_anonymous(&self) -> bool {
        matches!(&self.0, Repr::Inline { len: 1, bytes } if bytes[0] == b'-')
    }

    /// The stored bytes (tag included); what a shared store would use as its key.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }
}

impl From<&str> for Key {
    fn from(value: &str) -> Self {
        Self::from_bytes(value.as_bytes())
    }
}

impl From<IpAddr> for Key {
    fn from(ip: IpAddr) -> Self {
        Self::ip(ip)
    }
}

impl fmt::Debug for Key {
    // Keys can be credentials (an API key header): only the length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(Key))
            .field("len", &self.as_bytes().len())
            .finish_non_exhaustive()
    }
}

/// Picks the [`Key`] a request is counted under; `None` counts it under the shared
/// [`Key::anonymous`].
///
/// Implemented for closures `Fn(&Request<B>) -> Option<Key>`, for [`PeerIp`] (the default),
/// [`HeaderKey`], `()` (no key: every request counts against one global quota) and, with the
/// `auth` feature, `PrincipalKey`.
pub trait MakeKey<B> {
    /// The key of `req`.
    fn make_key(&self, req: &Request<B>) -> Option<Key>;
}

impl<B, F> MakeKey<B> for F
where
    F: Fn(&Request<B>) -> Option<Key>,
{
    fn make_key(&self, req: &Request<B>) -> Option<Key> {
        self(req)
    }
}

/// No key: one quota for all requests (a global limit).
impl<B> MakeKey<B> for () {
    fn make_key(&self, _req: &Request<B>) -> Option<Key> {
        None
    }
}

/// The default key: the client's IP address, from a [`SocketAddr`] in the request's
/// extensions (what a hyper accept loop inserts) or axum's `ConnectInfo<SocketAddr>` (with the
/// `axum` feature). See [`Key::ip`] for how IPv6 is counted.
///
/// Behind a reverse proxy every request comes from the proxy: use a closure that reads the
/// address the proxy vouches for instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerIp;

impl<B> MakeKey<B> for PeerIp {
    fn make_key(&self, req: &Request<B>) -> Option<Key> {
        if let Some(addr) = req.extensions().get::<SocketAddr>() {
            return Some(Key::ip(addr.ip()));
        }
        #[cfg(feature = "axum")]
        if let Some(info) = req
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
        {
            return Some(Key::ip(info.0.ip()));
        }
        None
    }
}

/// A key from a request header (an API key, a tenant id): the first value, bytes as sent. A
/// request without the header is [anonymous](Key::anonymous).
#[derive(Clone, Debug)]
pub struct HeaderKey(HeaderName);

impl HeaderKey {
    /// Keys requests by the header `name`.
    #[must_use]
    pub const fn new(name: HeaderName) -> Self {
        Self(name)
    }
}

impl<B> MakeKey<B> for HeaderKey {
    fn make_key(&self, req: &Request<B>) -> Option<Key> {
        let value = req.headers().get(&self.0)?;
        Some(Key::tagged(b'h', value.as_bytes()))
    }
}

/// A key from the authenticated [`Principal`](crate::auth::Principal)'s id in the request's
/// context (put there by [`AuthLayer`](crate::auth::AuthLayer), so place this layer inside
/// it). A request without a principal is [anonymous](Key::anonymous).
#[cfg(feature = "auth")]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrincipalKey;

#[cfg(feature = "auth")]
impl<B> MakeKey<B> for PrincipalKey {
    fn make_key(&self, req: &Request<B>) -> Option<Key> {
        use middleware_core::RequestExt;
        let principal = req.try_context()?.get::<crate::auth::Principal>()?;
        Some(Key::tagged(b'p', principal.id().as_bytes()))
    }
}

/// SipHash-2-4 of `bytes` with the key `0..16` (the reference test key: any fixed key does).
fn siphash24(bytes: &[u8]) -> u64 {
    #[inline]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    const K0: u64 = 0x0706_0504_0302_0100;
    const K1: u64 = 0x0f0e_0d0c_0b0a_0908;
    let mut v = [
        K0 ^ 0x736f_6d65_7073_6575,
        K1 ^ 0x646f_7261_6e64_6f6d,
        K0 ^ 0x6c79_6765_6e65_7261,
        K1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    // The length's low byte, as the algorithm specifies.
    #[allow(clippy::cast_possible_truncation)] // reason: only the low byte is wanted
    let len = bytes.len() as u8;
    last[7] = len;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_key_hash_is_siphash_2_4_and_the_same_on_every_build() {
        // The reference implementation's vectors (key 00..0f, message 00..len-1).
        let message: Vec<u8> = (0..64).collect();
        assert_eq!(siphash24(&message[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&message[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&message[..15]), 0xa129_ca61_49be_45e5);
        // A long key's bytes are pinned: shared stores see the same key from every build.
        let key = Key::from_bytes(&[b'x'; 100]);
        assert_eq!(
            &key.as_bytes()[MAX_KEY_LEN - 8..],
            &siphash24(&[b'x'; 100]).to_be_bytes()
        );
        assert_eq!(key.as_bytes().len(), MAX_KEY_LEN);
    }
}
