//! Generated hostile inputs, quickcheck style: a seeded generator produces structured cases for
//! each checker in [`hostile`], biased towards the shapes the parsers must
//! reject (the cases listed in the auth docs' "Failures" section) and the boundaries they
//! must respect. A failure prints the seed and the case number, so it can be replayed with
//! `--seed`.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::{Duration, Instant},
};

use super::hostile::{self, AuthChecker};

/// splitmix64: small, fast, good enough to drive a generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub const fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    /// Bytes from `alphabet`, `len` of them.
    fn string_from(&mut self, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len).map(|_| *self.pick(alphabet)).collect()
    }
}

const TOKEN68: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=@";

fn b64(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// A scheme name in random letter case.
fn cased(rng: &mut Rng, scheme: &str) -> Vec<u8> {
    scheme
        .bytes()
        .map(|b| {
            if rng.chance(2) {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect()
}

fn with_scheme(rng: &mut Rng, scheme: &str, credentials: &[u8]) -> Vec<u8> {
    let mut v = cased(rng, scheme);
    v.push(b' ');
    v.extend_from_slice(credentials);
    v
}

/// Names of the `Authorization` cases, in the order of [`authorization`]'s match.
pub const AUTH_CASES: [&str; 18] = [
    "valid bearer",
    "valid basic",
    "wrong token",
    "token one byte off",
    "extra or other whitespace",
    "scheme alone",
    "bad base64",
    "non-canonical padding",
    "basic without colon",
    "basic not utf-8",
    "over 8 KiB / at 8 KiB",
    "empty value",
    "random bytes",
    "several headers",
    "no header",
    "other scheme",
    "wrong basic password",
    "token in other case",
];

/// One `Authorization` case: the case number and the header values.
#[allow(clippy::too_many_lines)] // one arm per case, kept together
pub fn authorization(rng: &mut Rng) -> (usize, Vec<Vec<u8>>) {
    let case = rng.below(AUTH_CASES.len());
    let valid_basic = hostile::BASIC_TOKEN.as_bytes();
    let token = hostile::TOKEN.as_bytes();
    let values = match case {
        0 => vec![with_scheme(rng, "Bearer", token)],
        1 => vec![with_scheme(rng, "Basic", valid_basic)],
        2 => {
            let len = 1 + rng.below(64);
            let t = rng.string_from(TOKEN68, len);
            vec![with_scheme(rng, "Bearer", &t)]
        }
        3 => {
            let mut t = token.to_vec();
            let at = rng.below(t.len());
            t[at] = loop {
                let b = rng.byte();
                if b != t[at] {
                    break b;
                }
            };
            vec![with_scheme(rng, "Bearer", &t)]
        }
        4 => {
            let (scheme, cred) = if rng.chance(2) {
                ("Bearer", token)
            } else {
                ("Basic", valid_basic)
            };
            let ws: &[&[u8]] = &[b"  ", b"\t", b" \t", b"   "];
            let sep = *rng.pick(ws);
            let mut v = match rng.below(4) {
                0 => [cased(rng, scheme), sep.to_vec(), cred.to_vec()].concat(),
                1 => [b" ".to_vec(), with_scheme(rng, scheme, cred)].concat(),
                2 => [with_scheme(rng, scheme, cred), b" ".to_vec()].concat(),
                _ => [with_scheme(rng, scheme, cred), b"\t".to_vec()].concat(),
            };
            if rng.chance(8) {
                v.extend_from_slice(b", realm=\"x\"");
            }
            vec![v]
        }
        5 => {
            let v: &[&[u8]] = &[
                b"Bearer",
                b"Basic",
                b"bearer ",
                b"BASIC ",
                b" ",
                b"Bearer  ",
            ];
            vec![rng.pick(v).to_vec()]
        }
        6 => {
            let len = 1 + rng.below(40);
            let junk = rng.string_from(b"ABCabc012+/=!*%$#-_.~", len);
            vec![with_scheme(rng, "Basic", &junk)]
        }
        7 => {
            let mut t = valid_basic.to_vec();
            match rng.below(3) {
                0 => {
                    t.pop();
                }
                1 => t.push(b'='),
                _ => t.retain(|&b| b != b'='),
            }
            vec![with_scheme(rng, "Basic", &t)]
        }
        8 => {
            let len = rng.below(24);
            let raw: Vec<u8> = rng.string_from(b"abcdefghij0123456789-_ @!", len);
            vec![with_scheme(rng, "Basic", &b64(&raw))]
        }
        9 => {
            let mut raw = b"load-user:pass:word".to_vec();
            let at = rng.below(raw.len());
            raw[at] = 0x80 | rng.byte();
            vec![with_scheme(rng, "Basic", &b64(&raw))]
        }
        10 => {
            let prefix = with_scheme(rng, "Bearer", token);
            let target = hostile::MAX_CREDENTIALS_LEN + [0, 1, 100, 5000][rng.below(4)];
            let mut v = prefix;
            while v.len() < target {
                v.push(*rng.pick(TOKEN68));
            }
            vec![v]
        }
        11 => vec![Vec::new()],
        12 => {
            let len = rng.below(96);
            vec![(0..len).map(|_| rng.byte()).collect()]
        }
        13 => {
            let a = with_scheme(rng, "Bearer", token);
            let b = if rng.chance(2) {
                with_scheme(rng, "Basic", valid_basic)
            } else {
                a.clone()
            };
            vec![a, b]
        }
        14 => Vec::new(),
        15 => {
            let schemes = [
                "Token",
                "Digest",
                "Bearerx",
                "Basicx",
                "ApiKey",
                "Negotiate",
                "Bear",
                "Bas",
            ];
            let scheme = *rng.pick(&schemes);
            let cred = if rng.chance(2) { token } else { valid_basic };
            vec![with_scheme(rng, scheme, cred)]
        }
        16 => {
            let len = rng.below(20);
            let mut raw = b"load-user:".to_vec();
            raw.extend(rng.string_from(b"abcdefghijklmnopqrstuvwxyz:0123456789", len));
            if raw == b"load-user:pass:word" {
                raw.push(b'!');
            }
            vec![with_scheme(rng, "Basic", &b64(&raw))]
        }
        _ => {
            let upper: Vec<u8> = token.iter().map(u8::to_ascii_uppercase).collect();
            vec![with_scheme(rng, "Bearer", &upper)]
        }
    };
    (case, values)
}

/// A request-id candidate: mostly from the allowed charset around the length limits, with
/// an occasional hostile byte.
pub fn request_id(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(4),
        1 => 125 + rng.below(8),
        _ => rng.below(140),
    };
    let mut v = rng.string_from(ID_CHARS, len);
    if !v.is_empty() && rng.chance(3) {
        let hostile: &[u8] = b" \t\"';,%\r\n\x00\x1b\x7f\x80\xff<>\\{}";
        let at = rng.below(v.len());
        v[at] = *rng.pick(hostile);
    }
    v
}

/// A deadline-header candidate: digits and units around the limits, with noise.
pub fn deadline(rng: &mut Rng) -> Vec<u8> {
    let digits = rng.below(15);
    let mut v = rng.string_from(b"0123456789", digits);
    match rng.below(6) {
        0 => {}
        1..=3 => v.push(*rng.pick(b"HMSmun")),
        4 => v.push(*rng.pick(b"hsUNx +-.\x00\xff")),
        _ => {
            let at = rng.below(v.len() + 1);
            v.insert(at, *rng.pick(b" +-.,e_\t"));
            v.push(*rng.pick(b"HMSmun"));
        }
    }
    v
}

/// A log-value candidate: text mixed with control characters, ANSI sequences, line breaks,
/// bidirectional overrides and invalid UTF-8.
pub fn log_value(rng: &mut Rng) -> Vec<u8> {
    let pieces: &[&[u8]] = &[
        b"GET /users/7",
        b"\r\n",
        b"INFO forged line",
        b"\x1b[31m",
        b"\x1b]0;title\x07",
        b"\\",
        b"\"",
        b"\t",
        b"\x00",
        b"\x7f",
        "\u{202e}".as_bytes(),
        "\u{2066}".as_bytes(),
        "\u{2028}".as_bytes(),
        "\u{85}".as_bytes(),
        "\u{feff}".as_bytes(),
        "h\u{e9}llo \u{1f600}".as_bytes(),
        b"\xff",
        b"\xc3",
        b"\xe2\x80",
        b"\\x41",
        b"\\u{202e}",
    ];
    let n = rng.below(8);
    let mut v = Vec::new();
    for _ in 0..n {
        if rng.chance(4) {
            v.push(rng.byte());
        } else {
            let piece = *rng.pick(pieces);
            v.extend_from_slice(piece);
        }
    }
    v
}

/// A checker: its name, its generator, its check.
type Check = (&'static str, fn(&mut Rng) -> Vec<u8>, fn(&[u8]));

/// What a generated run did.
#[derive(Debug, Default)]
pub struct HostileReport {
    pub rows: Vec<(&'static str, u64, Duration, String)>,
    pub failures: Vec<String>,
}

/// Runs every checker over `auth` generated Authorization cases and `others` cases of each
/// other kind. A failure is recorded with its seed and case number, and stops that checker.
pub fn run(seed: u64, auth: u64, others: u64) -> HostileReport {
    let mut report = HostileReport::default();

    let mut rng = Rng::new(seed);
    let mut checker = AuthChecker::new();
    let mut per_case = [0u64; AUTH_CASES.len()];
    let start = Instant::now();
    for i in 0..auth {
        let (case, values) = authorization(&mut rng);
        per_case[case] += 1;
        // Random bytes go through the fuzz targets' splitting (NUL separates header values).
        let refs: Vec<&[u8]> = match values.as_slice() {
            [raw] if case == 12 => hostile::split_values(raw),
            _ => values.iter().map(Vec::as_slice).collect(),
        };
        if let Err(msg) = catch(|| checker.check(&refs)) {
            report.failures.push(format!(
                "Authorization (bearer + basic layers) (seed {seed}, case #{i}, {}): {msg}",
                AUTH_CASES[case]
            ));
            break;
        }
    }
    let min_case = per_case.iter().min().copied().unwrap_or(0);
    report.rows.push((
        "Authorization (bearer + basic layers)",
        auth,
        start.elapsed(),
        format!(
            "{} cases, each ≥ {min_case} times; bearer admitted {} / rejected {}, basic admitted {} / rejected {}; statuses only 200/401",
            AUTH_CASES.len(),
            checker.admitted[0],
            checker.rejected[0],
            checker.admitted[1],
            checker.rejected[1]
        ),
    ));

    let checks: [Check; 3] = [
        (
            "request-id validation + layer",
            request_id,
            hostile::check_request_id,
        ),
        (
            "deadline headers (grpc-timeout, millis)",
            deadline,
            hostile::check_deadline,
        ),
        ("log-value escaping", log_value, hostile::check_escape),
    ];
    for (k, (name, generate, check)) in checks.into_iter().enumerate() {
        let seed = seed.wrapping_add(k as u64 + 1);
        let mut rng = Rng::new(seed);
        let start = Instant::now();
        for i in 0..others {
            let value = generate(&mut rng);
            if let Err(msg) = catch(|| check(&value)) {
                report
                    .failures
                    .push(format!("{name} (seed {seed}, case #{i}): {msg}"));
                break;
            }
        }
        report.rows.push((
            name,
            others,
            start.elapsed(),
            String::from("the oracle agreed on every case"),
        ));
    }
    report
}

fn catch(f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| String::from("panic"))
    })
}
