//! Deadline headers: the `grpc-timeout` format and plain milliseconds.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// How a request budget travels in a header, inbound ([`TimeoutLayer::inbound_header`]) and
/// outbound ([`PropagateDeadlineLayer`]).
///
/// Parsing is strict: anything outside the grammar is *malformed* and ignored, never guessed at.
///
/// ```
/// use std::time::Duration;
/// use middleware_std::timeout::DeadlineFormat;
///
/// assert_eq!(DeadlineFormat::GrpcTimeout.parse(b"250m"), Some(Duration::from_millis(250)));
/// assert_eq!(DeadlineFormat::GrpcTimeout.parse(b"250 m"), None);
/// assert_eq!(DeadlineFormat::Millis.parse(b"1500"), Some(Duration::from_millis(1500)));
/// assert_eq!(DeadlineFormat::GrpcTimeout.encode(Duration::from_millis(1500)), "1500000u");
/// ```
///
/// [`TimeoutLayer::inbound_header`]: super::TimeoutLayer::inbound_header
/// [`PropagateDeadlineLayer`]: super::PropagateDeadlineLayer
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadlineFormat {
    /// gRPC's `TimeoutValue TimeoutUnit`: 1 to 8 ASCII digits, then one unit: `H` hours,
    /// `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds. No sign,
    /// no spaces, no fraction.
    GrpcTimeout,
    /// A number of milliseconds: 1 to 12 ASCII digits and nothing else.
    Millis,
}

/// The largest `TimeoutValue` gRPC allows (8 digits).
const GRPC_MAX: u64 = 99_999_999;
/// The largest millisecond value accepted and written (12 digits, about 31 years).
const MILLIS_MAX: u64 = 999_999_999_999;

impl DeadlineFormat {
    /// Parses a header value; `None` when it is malformed.
    #[must_use]
    pub fn parse(self, value: &[u8]) -> Option<Duration> {
        match self {
            Self::GrpcTimeout => {
                let (&unit, digits) = value.split_last()?;
                let n = digits_to_u64(digits, 8)?;
                Some(match unit {
                    b'H' => Duration::from_secs(n * 3600),
                    b'M' => Duration::from_secs(n * 60),
                    b'S' => Duration::from_secs(n),
                    b'm' => Duration::from_millis(n),
                    b'u' => Duration::from_micros(n),
                    b'n' => Duration::from_nanos(n),
                    _ => return None,
                })
            }
            Self::Millis => digits_to_u64(value, 12).map(Duration::from_millis),
        }
    }

    /// Writes `budget` as a header value, rounding *down* so that the receiver never works past
    /// the sender's deadline. `grpc-timeout` uses the finest unit that fits in 8 digits;
    /// budgets beyond 99 999 999 hours, or 12 millisecond digits, are clamped.
    ///
    /// # Panics
    ///
    /// Never: the output is ASCII digits and a unit letter.
    #[must_use]
    pub fn encode(self, budget: Duration) -> HeaderValue {
        let mut buf = [0u8; 16];
        let mut digits = itoa::Buffer::new();
        let len = match self {
            Self::GrpcTimeout => {
                let (n, unit) = grpc_value(budget);
                let len = copy_digits(&mut buf, digits.format(n));
                buf[len] = unit;
                len + 1
            }
            Self::Millis => {
                let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
                copy_digits(&mut buf, digits.format(ms.min(MILLIS_MAX)))
            }
        };
        HeaderValue::from_bytes(&buf[..len]).expect("digits and a unit letter are a valid header")
    }

    /// The budget carried by `name` in `headers`: `Ok(None)` when the header is absent,
    /// `Err(())` when it is malformed or repeated.
    pub(crate) fn read_header(
        self,
        headers: &HeaderMap,
        name: &HeaderName,
    ) -> Result<Option<Duration>, ()> {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(());
        }
        self.parse(value.as_bytes()).map(Some).ok_or(())
    }
}

/// `1..=max_digits` ASCII digits as a number.
fn digits_to_u64(digits: &[u8], max_digits: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max_digits {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The finest `grpc-timeout` unit whose value fits in 8 digits, rounded down.
fn grpc_value(budget: Duration) -> (u64, u8) {
    let units: [(u128, u8); 6] = [
        (1, b'n'),
        (1_000, b'u'),
        (1_000_000, b'm'),
        (1_000_000_000, b'S'),
        (60_000_000_000, b'M'),
        (3_600_000_000_000, b'H'),
    ];
    let nanos = budget.as_nanos();
    for (scale, unit) in units {
        let n = nanos / scale;
        if n <= u128::from(GRPC_MAX) {
            return (u64::try_from(n).unwrap_or(GRPC_MAX), unit);
        }
    }
    (GRPC_MAX, b'H')
}

/// Copies `digits` (at most 8 for gRPC, 12 for milliseconds) to the start of `buf`; returns
/// the length.
fn copy_digits(buf: &mut [u8; 16], digits: &str) -> usize {
    buf[..digits.len()].copy_from_slice(digits.as_bytes());
    digits.len()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn grpc_timeout_units_parse() {
        let g = DeadlineFormat::GrpcTimeout;
        assert_eq!(g.parse(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(g.parse(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(g.parse(b"4S"), Some(Duration::from_secs(4)));
        assert_eq!(g.parse(b"5m"), Some(Duration::from_millis(5)));
        assert_eq!(g.parse(b"6u"), Some(Duration::from_micros(6)));
        assert_eq!(g.parse(b"7n"), Some(Duration::from_nanos(7)));
        assert_eq!(g.parse(b"0n"), Some(Duration::ZERO));
        assert_eq!(g.parse(b"00000001S"), Some(Duration::from_secs(1)));
        assert_eq!(
            g.parse(b"99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn hostile_grpc_timeouts_are_malformed() {
        let table: &[&[u8]] = &[
            b"",
            b"S",
            b"1",
            b"123456789S", // 9 digits
            b" 1S",
            b"1S ",
            b"1 S",
            b"-1S",
            b"+1S",
            b"1.5S",
            b"0x1S",
            b"1s", // `s` is not a unit
            b"1h",
            b"1SS",
            b"1S\r\n",
            b"1\nS",
            b"1S\0",
            b"\x001S",
            "１S".as_bytes(), // full-width digit
            "1秒".as_bytes(),
            b"1e3m",
            b"18446744073709551616n",
            b"\xff\xfe",
            b"1,2S",
        ];
        for bad in table {
            assert_eq!(
                DeadlineFormat::GrpcTimeout.parse(bad),
                None,
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn hostile_millis_are_malformed() {
        let table: &[&[u8]] = &[
            b"",
            b"1000ms",
            b"1S",
            b" 5",
            b"5 ",
            b"-5",
            b"+5",
            b"5.0",
            b"1000000000000", // 13 digits
            b"99999999999999999999999",
            b"\r\n",
            "٣".as_bytes(), // Arabic-Indic digit three
        ];
        for bad in table {
            assert_eq!(
                DeadlineFormat::Millis.parse(bad),
                None,
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(DeadlineFormat::Millis.parse(b"000"), Some(Duration::ZERO));
        assert_eq!(
            DeadlineFormat::Millis.parse(b"999999999999"),
            Some(Duration::from_millis(MILLIS_MAX))
        );
    }

    #[test]
    fn encoding_picks_the_finest_unit_that_fits() {
        let g = DeadlineFormat::GrpcTimeout;
        assert_eq!(g.encode(Duration::ZERO), "0n");
        assert_eq!(g.encode(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(g.encode(Duration::from_nanos(100_000_001)), "100000u");
        assert_eq!(g.encode(Duration::from_secs(30)), "30000000u");
        assert_eq!(g.encode(Duration::from_secs(3600)), "3600000m");
        assert_eq!(g.encode(Duration::from_secs(200_000)), "200000S");
        assert_eq!(g.encode(Duration::MAX), "99999999H");
        assert_eq!(
            DeadlineFormat::Millis.encode(Duration::from_micros(2_999)),
            "2"
        );
        assert_eq!(DeadlineFormat::Millis.encode(Duration::MAX), "999999999999");
    }

    #[test]
    fn repeated_headers_are_malformed() {
        let name = HeaderName::from_static("grpc-timeout");
        let mut headers = HeaderMap::new();
        assert_eq!(
            DeadlineFormat::GrpcTimeout.read_header(&headers, &name),
            Ok(None)
        );
        headers.append(&name, HeaderValue::from_static("1S"));
        assert_eq!(
            DeadlineFormat::GrpcTimeout.read_header(&headers, &name),
            Ok(Some(Duration::from_secs(1)))
        );
        headers.append(&name, HeaderValue::from_static("1S"));
        assert_eq!(
            DeadlineFormat::GrpcTimeout.read_header(&headers, &name),
            Err(())
        );
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_and_accepts_only_the_grammar(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let valid = bytes.len() >= 2
                && bytes.len() <= 9
                && bytes[..bytes.len() - 1].iter().all(u8::is_ascii_digit)
                && b"HMSmun".contains(&bytes[bytes.len() - 1]);
            prop_assert_eq!(DeadlineFormat::GrpcTimeout.parse(&bytes).is_some(), valid);
            let valid_ms = !bytes.is_empty() && bytes.len() <= 12 && bytes.iter().all(u8::is_ascii_digit);
            prop_assert_eq!(DeadlineFormat::Millis.parse(&bytes).is_some(), valid_ms);
        }

        #[test]
        fn well_formed_values_parse_exactly(n in 0u64..=GRPC_MAX, unit in proptest::sample::select(b"HMSmun".to_vec())) {
            let text = format!("{n}{}", char::from(unit));
            let scale = match unit {
                b'H' => 3_600_000_000_000u128,
                b'M' => 60_000_000_000,
                b'S' => 1_000_000_000,
                b'm' => 1_000_000,
                b'u' => 1_000,
                _ => 1,
            };
            let parsed = DeadlineFormat::GrpcTimeout.parse(text.as_bytes()).unwrap();
            prop_assert_eq!(parsed.as_nanos(), u128::from(n) * scale);
        }

        #[test]
        fn encoding_round_trips_rounding_down(secs in 0u64..400_000_000, nanos in 0u32..1_000_000_000) {
            let budget = Duration::new(secs, nanos);
            for format in [DeadlineFormat::GrpcTimeout, DeadlineFormat::Millis] {
                let value = format.encode(budget);
                let back = format.parse(value.as_bytes()).expect("encoded value parses");
                prop_assert!(back <= budget, "{value:?} is later than {budget:?}");
            }
            // The finest unit that fits keeps at least 5 significant digits.
            let back = DeadlineFormat::GrpcTimeout
                .parse(DeadlineFormat::GrpcTimeout.encode(budget).as_bytes())
                .unwrap();
            prop_assert!(budget.saturating_sub(back).as_nanos() * 100_000 <= budget.as_nanos());
        }
    }
}
