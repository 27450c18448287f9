//! Rendering of the `Server-Timing` and `x-response-time` values.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use middleware_core::Mark;

use super::Precision;

/// The longest metric name we emit, in bytes after escaping; longer names are cut.
pub(crate) const MAX_NAME: usize = 64;

/// Whether `b` is a `tchar` of RFC 9110's `token` grammar (the Server-Timing metric name).
const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|'
        | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Writes `name` as a token: tchars pass, every other byte (and `%` itself) is
/// percent-encoded, an empty name becomes `_`, and the result is cut at [`MAX_NAME`] bytes
/// (never inside an escape).
fn write_token(out: &mut impl Sink, name: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if name.is_empty() {
        out.push(b"_");
        return;
    }
    // The common case (the std layers' `mw.*` names, most marks): a token already, written
    // in one piece.
    let bytes = name.as_bytes();
    if bytes.len() <= MAX_NAME && bytes.iter().all(|&b| is_tchar(b) && b != b'%') {
        out.push(bytes);
        return;
    }
    let mut written = 0;
    for &b in name.as_bytes() {
        if is_tchar(b) && b != b'%' {
            if written + 1 > MAX_NAME {
                return;
            }
            out.push(&[b]);
            written += 1;
        } else {
            if written + 3 > MAX_NAME {
                return;
            }
            out.push(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            written += 3;
        }
    }
}

/// Writes a duration in milliseconds with three decimals (`12.345`), without floats and
/// without `core::fmt` (this runs twice per response: to measure, then to write).
fn write_millis(out: &mut impl Sink, duration: Duration) {
    let micros = duration.as_micros();
    let mut digits = itoa::Buffer::new();
    // `u64` is the fast path; beyond it (584,000 years) `u128` formats the same digits.
    let millis = match u64::try_from(micros / 1000) {
        Ok(millis) => digits.format(millis),
        Err(_) => digits.format(micros / 1000),
    };
    out.push(millis.as_bytes());
    // `1000 + fraction` has four digits: the last three are the fraction, zero-padded.
    let fraction = 1000 + u16::try_from(micros % 1000).unwrap_or(0);
    let fraction = digits.format(fraction).as_bytes();
    out.push(&[b'.', fraction[1], fraction[2], fraction[3]]);
}

/// Writes one `name;dur=ms` metric, with a leading `, ` unless it is the first.
fn write_metric(out: &mut impl Sink, first: bool, name: &str, duration: Duration) {
    if !first {
        out.push(b", ");
    }
    write_token(out, name);
    out.push(b";dur=");
    write_millis(out, duration);
}

fn write_server_timing(
    out: &mut impl Sink,
    total: Duration,
    marks: &[Mark],
    max_marks: usize,
    precision: Precision,
) {
    write_metric(out, true, "total", precision.round(total));
    for mark in marks.iter().take(max_marks) {
        write_metric(out, false, mark.name(), precision.round(mark.duration()));
    }
}

/// The `Server-Timing` value: `total` first, then up to `max_marks` marks in recording order,
/// every duration rounded down to `precision`.
///
/// One allocation: the value is rendered once on the stack and copied into the header's
/// `Bytes`; a value too long for the stack buffer is measured first and rendered into a buffer
/// of its exact length.
pub(crate) fn server_timing(
    total: Duration,
    marks: &[Mark],
    max_marks: usize,
    precision: Precision,
) -> HeaderValue {
    let mut stack = Buf::<STACK_VALUE>::default();
    write_server_timing(&mut stack, total, marks, max_marks, precision);
    if !stack.overflowed {
        return HeaderValue::from_maybe_shared(Bytes::copy_from_slice(stack.as_bytes()))
            .expect("tokens, digits and separators are visible ascii");
    }
    let mut len = Counter(0);
    write_server_timing(&mut len, total, marks, max_marks, precision);
    let mut buf = Vec::with_capacity(len.0);
    write_server_timing(&mut buf, total, marks, max_marks, precision);
    debug_assert_eq!(buf.len(), buf.capacity());
    HeaderValue::from_maybe_shared(Bytes::from(buf))
        .expect("tokens, digits and separators are visible ascii")
}

/// The `x-response-time` value: `12.345ms`.
pub(crate) fn response_time(total: Duration) -> HeaderValue {
    let mut buf = Buf::<48>::default();
    write_millis(&mut buf, total);
    buf.push(b"ms");
    HeaderValue::from_bytes(buf.as_bytes()).expect("digits, a dot and `ms` are visible ascii")
}

/// Where rendered bytes go: a length counter or the real buffer.
trait Sink {
    fn push(&mut self, bytes: &[u8]);
}

struct Counter(usize);

impl Sink for Counter {
    fn push(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

impl Sink for Vec<u8> {
    fn push(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The stack buffer a `Server-Timing` value is first rendered into: `total` and a handful of
/// marks fit (a metric with a short name takes about 25 bytes).
const STACK_VALUE: usize = 512;

/// A stack buffer of `N` bytes (`u128` milliseconds and `ms` need at most 39 + 4 + 2 = 45).
/// What does not fit is dropped and `overflowed` is set.
struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            overflowed: false,
        }
    }
}

impl<const N: usize> Buf<N> {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> Sink for Buf<N> {
    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(room) = self.bytes.get_mut(self.len..end) {
            room.copy_from_slice(bytes);
            self.len = end;
        } else {
            self.overflowed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    use middleware_core::Context;
    use proptest::prelude::*;

    fn token(name: &str) -> String {
        let mut out = Vec::new();
        write_token(&mut out, name);
        String::from_utf8(out).unwrap()
    }

    fn marks(names: &[&str]) -> Vec<Mark> {
        let cx = Context::new();
        for (i, name) in names.iter().enumerate() {
            cx.mark(
                name.to_string(),
                Duration::from_micros(1500 * (i as u64 + 1)),
            );
        }
        cx.marks()
    }

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        let value = server_timing(
            Duration::from_micros(12_345),
            &marks(&["db"]),
            8,
            Precision::Exact,
        );
        assert_eq!(value, "total;dur=12.345, db;dur=1.500");
        assert_eq!(response_time(Duration::from_millis(7)), "7.000ms");
        assert_eq!(response_time(Duration::ZERO), "0.000ms");
        assert_eq!(response_time(Duration::from_micros(1)), "0.001ms");
        assert_eq!(response_time(Duration::from_micros(10_050)), "10.050ms");
        assert_eq!(
            response_time(Duration::from_micros(u64::MAX)),
            "18446744073709551.615ms"
        );
        assert_eq!(
            response_time(Duration::MAX),
            "18446744073709551615999.999ms"
        );
    }

    #[test]
    fn hostile_mark_names_become_tokens() {
        let table = [
            ("db", "db"),
            ("mw.timeout", "mw.timeout"),
            ("", "_"),
            ("a b", "a%20b"),
            ("a,b;dur=1", "a%2Cb%3Bdur%3D1"),
            ("x\r\nSet-Cookie: a=b", "x%0D%0ASet-Cookie%3A%20a%3Db"),
            ("\"quoted\"", "%22quoted%22"),
            ("100%", "100%25"),
            ("é", "%C3%A9"),
            ("\u{1b}[31mred", "%1B%5B31mred"),
            ("nul\0", "nul%00"),
        ];
        for (name, expected) in table {
            assert_eq!(token(name), expected, "{name:?}");
        }
    }

    #[test]
    fn long_names_are_cut_outside_escapes() {
        assert_eq!(token(&"a".repeat(500)).len(), MAX_NAME);
        let cut = token(&format!("{}é", "a".repeat(MAX_NAME - 2)));
        assert_eq!(cut, "a".repeat(MAX_NAME - 2), "a half escape was emitted");
    }

    #[test]
    fn a_value_longer_than_the_stack_buffer_renders_the_same() {
        // 20 marks of 60-byte names: about 1,400 bytes, past the stack buffer.
        let names: Vec<String> = (0..20)
            .map(|i| format!("{i:02}{}", "x".repeat(58)))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let value = server_timing(
            Duration::from_micros(2_500),
            &marks(&refs),
            64,
            Precision::Exact,
        );
        let mut expected = String::from("total;dur=2.500");
        for (i, name) in names.iter().enumerate() {
            let micros = 1500 * (i as u64 + 1);
            let _ = write!(
                expected,
                ", {name};dur={}.{:03}",
                micros / 1000,
                micros % 1000
            );
        }
        assert!(expected.len() > STACK_VALUE);
        assert_eq!(value, expected.as_str());
        // And one that fits exactly renders on the stack.
        let short = server_timing(Duration::ZERO, &marks(&["mw.auth"]), 8, Precision::Exact);
        assert_eq!(short, "total;dur=0.000, mw.auth;dur=1.500");
    }

    #[test]
    fn only_max_marks_are_reported() {
        let value = server_timing(
            Duration::ZERO,
            &marks(&["a", "b", "c"]),
            2,
            Precision::Exact,
        );
        assert_eq!(value, "total;dur=0.000, a;dur=1.500, b;dur=3.000");
    }

    #[test]
    fn coarse_precisions_round_every_duration_down() {
        let cx = Context::new();
        cx.mark("db", Duration::from_micros(9_999));
        cx.mark("cache", Duration::from_micros(10_001));
        let total = Duration::new(2, 345_678_901);
        let value = cx.with_marks(|m| server_timing(total, m, 8, Precision::Millis));
        assert_eq!(value, "total;dur=2345.000, db;dur=9.000, cache;dur=10.000");
        let value = cx.with_marks(|m| server_timing(total, m, 8, Precision::TenMillis));
        assert_eq!(value, "total;dur=2340.000, db;dur=0.000, cache;dur=10.000");
        assert_eq!(
            Precision::TenMillis.round(Duration::MAX).subsec_nanos(),
            990_000_000
        );
    }

    proptest! {
        #[test]
        fn rounding_never_rounds_up_nor_by_a_step_or_more(
            secs in any::<u64>(),
            nanos in 0_u32..1_000_000_000,
        ) {
            let d = Duration::new(secs, nanos);
            for (precision, step) in [
                (Precision::Exact, 1),
                (Precision::Millis, 1_000_000),
                (Precision::TenMillis, 10_000_000),
            ] {
                let rounded = precision.round(d);
                prop_assert!(rounded <= d);
                prop_assert!(d.saturating_sub(rounded) < Duration::from_nanos(step));
                prop_assert_eq!(rounded.subsec_nanos() % u32::try_from(step).unwrap(), 0);
            }
        }

        #[test]
        fn any_name_renders_a_valid_metric(name in any::<String>()) {
            let value = server_timing(Duration::from_millis(1), &marks(&[name.as_str()]), 8, Precision::Exact);
            let text = value.to_str().unwrap();
            let metric = text.strip_prefix("total;dur=1.000, ").unwrap();
            let (token, dur) = metric.split_once(";dur=").unwrap();
            prop_assert!(!token.is_empty() && token.len() <= MAX_NAME);
            prop_assert!(token.bytes().all(is_tchar), "{token:?}");
            prop_assert_eq!(dur, "1.500");
        }

        #[test]
        fn millis_match_the_formatter(secs in any::<u64>(), nanos in 0_u32..1_000_000_000) {
            let duration = Duration::new(secs, nanos);
            let micros = duration.as_micros();
            let expected = format!("{}.{:03}ms", micros / 1000, micros % 1000);
            let value = response_time(duration);
            prop_assert_eq!(value.to_str().unwrap(), expected);
        }
    }
}
