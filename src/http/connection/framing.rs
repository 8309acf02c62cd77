//! Where each HTTP/1.1 request on a connection ends, read from the bytes a client sends:
//! just enough framing (the head's end, then a `Content-Length` or chunked body) to know
//! where the next request starts, so [`super::io::Paced`] can hold a request back until the
//! connection has room for it. It never changes a byte and never refuses anything: parsing
//! and every refusal stay actix-http's. What it cannot frame — a head actix-http will refuse
//! with 400, an `Upgrade: websocket` or `CONNECT` (whose body runs to the end of the
//! connection) — makes the rest of the connection opaque: all of it passes, uncounted.
//!
//! The rules are those of actix-http 3 (RFC 9112 §2–§7, with its leniencies): empty lines
//! before a request line are skipped; a head ends at its first empty line, `\r\n` or a bare
//! `\n` (where httparse, actix-http's parser, ends it: the tests check the two agree on every
//! head httparse accepts); one `Content-Length` of decimal digits, or `Transfer-Encoding:
//! chunked` alone (HTTP/1.1 only), frames the body; chunk-size lines end in `\r\n` and may
//! carry spaces and `;` extensions; the last chunk is followed by trailer lines up to an
//! empty one. It runs on every request, so heads are scanned line by line with memchr and
//! only the three header names that matter are compared.

/// Longest head followed: actix-http refuses a head it has not found the end of in 128 KiB,
/// and closes the connection, so past this nothing more is counted.
const HEAD_LIMIT: usize = 128 * 1024 + 1;

/// Where a connection's byte stream is.
#[derive(Debug, Default)]
pub struct Framer {
    state: State,
    /// The bytes of a head that began in an earlier read, until its end arrives.
    head: Vec<u8>,
    /// The search for the head's end: 1 after a `\n`, 2 after `\n\r`, else 0.
    newlines: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests; `cr` after the `\r` of an empty line.
    #[default]
    Between,
    BetweenCr,
    /// Inside a request head.
    Head,
    /// Inside a body of known length: this many bytes to come.
    Body(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Everything from here on passes uncounted.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a chunk size.
    SizeStart,
    /// More hex digits, or the end of the size.
    Size(u64),
    /// Spaces after the size.
    SizeSpace(u64),
    /// A `;` extension, up to the `\r`.
    Extension(u64),
    /// The `\n` ending a size line.
    SizeLf(u64),
    /// Chunk data: this many bytes to come.
    Data(u64),
    /// The `\r\n` after chunk data.
    DataCr,
    DataLf,
    /// The start of a trailer line, or the final empty line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    TrailerLf,
    /// The `\n` of the final empty line.
    EndLf,
}

/// How a head says its body is framed.
#[derive(Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    /// Cannot be framed, or runs to the end of the connection.
    Opaque,
}

impl Framer {
    /// Whether the next byte would start a new request (empty lines aside).
    pub fn between_requests(&self) -> bool {
        matches!(self.state, State::Between | State::BetweenCr)
    }

    /// Follows `bytes`, the next ones the client sent, and returns how many of them may be
    /// delivered now and how many requests they start: it stops just before the first byte
    /// of a request when `may_start` requests have already started in this call. Bytes it did
    /// not take must be offered again, first, in a later call.
    pub fn advance(&mut self, bytes: &[u8], may_start: u32) -> (usize, u32) {
        let mut at = 0;
        let mut started = 0;
        while at < bytes.len() {
            match self.state {
                State::Between => match bytes[at] {
                    b'\r' => {
                        self.state = State::BetweenCr;
                        at += 1;
                    }
                    b'\n' => at += 1,
                    _ if started == may_start => return (at, started),
                    _ => {
                        started += 1;
                        self.state = State::Head;
                        self.newlines = 0;
                    }
                },
                State::BetweenCr if bytes[at] == b'\n' => {
                    self.state = State::Between;
                    at += 1;
                }
                // A lone `\r` before a request line: actix-http refuses it.
                State::BetweenCr => self.state = State::Opaque,
                State::Head => at += self.follow_head(&bytes[at..]),
                State::Body(left) => {
                    let take = left.min((bytes.len() - at) as u64);
                    at += take as usize;
                    self.state = if take == left { State::Between } else { State::Body(left - take) };
                }
                State::Chunked(Chunk::Data(left)) => {
                    let take = left.min((bytes.len() - at) as u64);
                    at += take as usize;
                    let next = if take == left { Chunk::DataCr } else { Chunk::Data(left - take) };
                    self.state = State::Chunked(next);
                }
                State::Chunked(chunk) => {
                    self.state = step_chunk(chunk, bytes[at]);
                    at += 1;
                }
                State::Opaque => return (bytes.len(), started),
            }
        }
        (at, started)
    }

    /// Follows head bytes; returns how many of `bytes` belong to the head (all of them when
    /// its end has not come yet), and moves on to its body once its end has.
    fn follow_head(&mut self, bytes: &[u8]) -> usize {
        // Most heads arrive whole: one pass finds the end and reads the headers.
        let whole = if self.head.is_empty() { scan_head(bytes) } else { None };
        let (end, body) = match whole {
            Some(found) => found,
            None => match head_end(bytes, &mut self.newlines) {
                Some(end) => {
                    self.head.extend_from_slice(&bytes[..end]);
                    let body = scan_head(&self.head).map_or(Body::Opaque, |(_, body)| body);
                    self.head.clear();
                    (end, body)
                }
                None => {
                    self.head.extend_from_slice(bytes);
                    if self.head.len() > HEAD_LIMIT {
                        self.head = Vec::new();
                        self.state = State::Opaque;
                    }
                    return bytes.len();
                }
            },
        };
        self.state = match body {
            Body::None | Body::Length(0) => State::Between,
            Body::Length(n) => State::Body(n),
            Body::Chunked => State::Chunked(Chunk::SizeStart),
            Body::Opaque => State::Opaque,
        };
        end
    }
}

/// Where in `bytes` the head ends (just past its empty line), given how the bytes before
/// them ended (`newlines`, updated when the end is not in `bytes`).
fn head_end(bytes: &[u8], newlines: &mut u8) -> Option<usize> {
    let mut at = 0;
    loop {
        // After a `\n`: another `\n`, or `\r\n`, is the empty line.
        while *newlines > 0 {
            let b = *bytes.get(at)?;
            at += 1;
            *newlines = match (b, *newlines) {
                (b'\n', _) => return Some(at),
                (b'\r', 1) => 2,
                _ => 0,
            };
        }
        at += memchr::memchr(b'\n', bytes.get(at..)?)? + 1;
        *newlines = 1;
    }
}

/// Where the head at the start of `bytes` ends (just past its empty line: the first line
/// that is empty or a lone `\r`, as `head_end` finds it) and how it frames its body; `None`
/// while its end has not arrived.
fn scan_head(bytes: &[u8]) -> Option<(usize, Body)> {
    let mut lines = memchr::memchr_iter(b'\n', bytes).scan(0, |start, end| {
        let line = &bytes[*start..end];
        *start = end + 1;
        Some((end + 1, line.strip_suffix(b"\r").unwrap_or(line)))
    });
    let (_, request_line) = lines.next()?;
    let method = request_line.split(|&b| b == b' ').next().unwrap_or_default();
    let http10 = request_line.ends_with(b" HTTP/1.0");
    let (mut length, mut chunked, mut websocket, mut opaque) = (None, false, false, false);
    let end = loop {
        let (end, line) = lines.next()?;
        if line.is_empty() {
            break end;
        }
        if opaque {
            continue;
        }
        // Only three names matter, each told apart by its first letter and its colon's place
        // before anything is compared.
        let (name_len, name) = match line[0] | 0x20 {
            b'c' => (14, &b"content-length"[..]),
            b't' => (17, &b"transfer-encoding"[..]),
            b'u' => (7, &b"upgrade"[..]),
            _ => continue,
        };
        if line.get(name_len) != Some(&b':') || !line[..name_len].eq_ignore_ascii_case(name) {
            continue;
        }
        let value = line[name_len + 1..].trim_ascii();
        match name_len {
            14 if length.is_some() => opaque = true,
            14 => match decimal(value) {
                Some(n) => length = Some(n),
                None => opaque = true,
            },
            // One header, HTTP/1.1, and exactly `chunked`: anything else actix-http refuses.
            17 if chunked || http10 || !value.eq_ignore_ascii_case(b"chunked") => opaque = true,
            17 => chunked = true,
            _ => websocket |= value.eq_ignore_ascii_case(b"websocket"),
        }
    };
    let body = match (chunked, length) {
        _ if opaque => Body::Opaque,
        (true, Some(_)) => Body::Opaque,
        (true, None) => Body::Chunked,
        // actix-http hands an upgrade the rest of the connection as its body.
        _ if websocket => Body::Opaque,
        (false, Some(n)) if n > 0 => Body::Length(n),
        // So it does for a CONNECT without a body length.
        _ if method == b"CONNECT" => Body::Opaque,
        _ => Body::None,
    };
    Some((end, body))
}

/// One byte of a chunked body's framing (chunk data is skipped in bulk by the caller).
fn step_chunk(chunk: Chunk, b: u8) -> State {
    let hex = |b: u8| (b as char).to_digit(16).map(u64::from);
    let next = match (chunk, b) {
        (Chunk::SizeStart, _) => match hex(b) {
            Some(d) => Chunk::Size(d),
            None => return State::Opaque,
        },
        (Chunk::Size(n), b' ' | b'\t') => Chunk::SizeSpace(n),
        (Chunk::Size(n) | Chunk::SizeSpace(n), b';') => Chunk::Extension(n),
        (Chunk::Size(n) | Chunk::SizeSpace(n) | Chunk::Extension(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::Size(n), _) => match hex(b).and_then(|d| n.checked_mul(16).and_then(|m| m.checked_add(d))) {
            Some(m) => Chunk::Size(m),
            None => return State::Opaque,
        },
        (Chunk::SizeSpace(n), b' ' | b'\t') => Chunk::SizeSpace(n),
        // Control characters other than a tab end an extension with an error.
        (Chunk::Extension(_), 0x00..=0x08 | 0x0a..=0x1f | 0x7f) => return State::Opaque,
        (Chunk::Extension(n), _) => Chunk::Extension(n),
        (Chunk::SizeLf(0), b'\n') => Chunk::TrailerStart,
        (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
        (Chunk::DataCr, b'\r') => Chunk::DataLf,
        (Chunk::DataLf, b'\n') => Chunk::SizeStart,
        (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
        (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
        (Chunk::TrailerStart | Chunk::Trailer, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
        (Chunk::EndLf, b'\n') => return State::Between,
        _ => return State::Opaque,
    };
    State::Chunked(next)
}

/// A `Content-Length` value: decimal digits only, fitting 64 bits.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    /// Feeds `stream` in pieces of `piece` bytes, admitting every request; returns how many
    /// requests started and whether the stream ended between requests (false: inside one,
    /// or opaque).
    fn frame(stream: &[u8], piece: usize) -> (u32, State) {
        let mut f = Framer::default();
        let mut started = 0;
        for part in stream.chunks(piece) {
            let (taken, n) = f.advance(part, u32::MAX);
            assert_eq!(taken, part.len());
            started += n;
        }
        (started, f.state)
    }

    /// Every case, fed whole and then one byte at a time: requests counted, and where the
    /// stream ends.
    #[test]
    fn requests_are_counted_where_actix_http_would_read_them() {
        let cases: &[(&str, &[u8], u32, State)] = &[
            ("one GET", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, State::Between),
            ("three GETs", b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n", 3, State::Between),
            ("bare newlines", b"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\nHost: x\n\n", 2, State::Between),
            ("mixed newlines", b"GET / HTTP/1.1\r\nHost: x\n\r\nGET / HTTP/1.0\n\n", 2, State::Between),
            ("empty lines between", b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2, State::Between),
            ("partial head", b"GET / HTTP/1.1\r\nHost: x\r\n", 1, State::Head),
            ("length body", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2, State::Between),
            ("body that looks like a request", b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length:  27 \r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, State::Between),
            ("partial body", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx", 1, State::Body(999)),
            ("zero length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2, State::Between),
            ("leading zeros", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 002\r\n\r\nokGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2, State::Between),
            ("chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2, State::Between),
            ("chunked, case and spaces", b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding:  Chunked \r\n\r\nA \r\n0123456789\r\n0\r\n\r\n", 1, State::Between),
            ("chunk extensions", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;name=\"v a\"\r\nabc\r\n0;last\r\n\r\n", 1, State::Between),
            ("trailers", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2, State::Between),
            ("chunk holding a request", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1b\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n", 1, State::Between),
            ("stalled chunk", b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 1, State::Chunked(Chunk::Data(3))),
            ("two lengths", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 1, State::Opaque),
            ("signed length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx", 1, State::Opaque),
            ("length and chunked", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 1, State::Opaque),
            ("chunked on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 1, State::Opaque),
            ("identity coding", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 1, State::Opaque),
            ("bad chunk size", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 1, State::Opaque),
            ("chunk size too big", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 1, State::Opaque),
            // actix-http refuses this head (400) and closes the connection: what is counted after it
            // does not matter, and it is framed like any other.
            ("header without colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2, State::Between),
            ("websocket upgrade", b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, State::Opaque),
            ("connect", b"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, State::Opaque),
            ("lone cr", b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, State::Opaque),
        ];
        for (name, stream, requests, end) in cases {
            assert_eq!(frame(stream, stream.len()), (*requests, *end), "{name}, whole");
            assert_eq!(frame(stream, 1), (*requests, *end), "{name}, byte by byte");
            assert_eq!(frame(stream, 7), (*requests, *end), "{name}, in sevens");
        }
    }

    #[test]
    fn a_request_past_the_allowance_is_held_back_and_offered_again() {
        let one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let stream: Vec<u8> = [&one[..], b"\r\n", one, one].concat();
        let mut f = Framer::default();
        // Nothing may start: not even the first byte is taken.
        assert_eq!(f.advance(&stream, 0), (0, 0));
        // One may start: it, and the empty line after it, are taken; the next is held back.
        assert_eq!(f.advance(&stream, 1), (one.len() + 2, 1));
        assert!(f.between_requests());
        let rest = &stream[one.len() + 2..];
        assert_eq!(f.advance(rest, 0), (0, 0));
        assert_eq!(f.advance(rest, 5), (rest.len(), 2));
        // A partial head counts when its first byte is taken; the rest of it is never held.
        let mut f = Framer::default();
        assert_eq!(f.advance(b"GET / HT", 1), (8, 1));
        assert_eq!(f.advance(b"TP/1.1\r\nHost: x\r\n\r\n", 0), (19, 0));
        assert!(f.between_requests());
    }

    /// The framing actix-http gives a head httparse parsed (its rules, restated on httparse's
    /// view of the head).
    fn oracle(request: &httparse::Request<'_, '_>) -> Body {
        let http10 = request.version == Some(0);
        let (mut length, mut chunked, mut websocket) = (None, false, false);
        for header in request.headers.iter() {
            let value = header.value.trim_ascii();
            if header.name.eq_ignore_ascii_case("content-length") {
                if length.is_some() {
                    return Body::Opaque;
                }
                match std::str::from_utf8(value).ok().filter(|v| !v.starts_with('+')).and_then(|v| v.parse().ok()) {
                    Some(n) => length = Some(n),
                    None => return Body::Opaque,
                }
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                if chunked || http10 || !value.eq_ignore_ascii_case(b"chunked") {
                    return Body::Opaque;
                }
                chunked = true;
            } else if header.name.eq_ignore_ascii_case("upgrade") && value.eq_ignore_ascii_case(b"websocket") {
                websocket = true;
            }
        }
        match (chunked, length) {
            (true, Some(_)) => Body::Opaque,
            (true, None) => Body::Chunked,
            _ if websocket => Body::Opaque,
            (false, Some(n)) if n > 0 => Body::Length(n),
            _ if request.method == Some("CONNECT") => Body::Opaque,
            _ => Body::None,
        }
    }

    fn any_head() -> impl Strategy<Value = Vec<u8>> {
        let method = prop::sample::select(vec!["GET", "POST", "CONNECT", "DELETE"]);
        let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0"]);
        let name = prop::sample::select(vec![
            "Host",
            "Content-Length",
            "content-LENGTH",
            "Transfer-Encoding",
            "transfer-encoding",
            "Upgrade",
            "X-A",
            "Connection",
            "Content-Type",
            "Te",
            "Content-Lengthx",
            "U",
        ]);
        let value = prop::sample::select(vec![
            "0",
            "5",
            "007",
            "+1",
            " 3 ",
            "\t12\t",
            "1 2",
            "chunked",
            "Chunked ",
            "identity",
            "chunked, gzip",
            "websocket",
            "a:b",
            "",
            "x y",
            "18446744073709551616",
        ]);
        // Mostly what httparse accepts, sometimes what it refuses.
        let separator = prop::sample::select(vec![":", ": ", ": ", ": ", ":\t", ":  ", " :"]);
        let newline = prop::sample::select(vec!["\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\n", "\n", "\r"]);
        let header = (name, separator, value, newline.clone());
        (method, version, newline.clone(), prop::collection::vec(header, 0..8), newline).prop_map(
            |(method, version, first_end, headers, last)| {
                let mut head = format!("{method} /x {version}{first_end}");
                for (name, separator, value, end) in headers {
                    head.push_str(&format!("{name}{separator}{value}{end}"));
                }
                head.push_str(last);
                head.push_str("GET / HTTP/1.1\r\n\r\n"); // what follows it
                head.into_bytes()
            },
        )
    }

    proptest! {
        /// Wherever httparse (and so actix-http) reads a complete head, the framer ends it at
        /// the same byte and frames its body the same way, however the bytes are split.
        #[test]
        fn heads_end_where_httparse_ends_them(stream in any_head(), split in 0usize..200) {
            let mut headers = [httparse::EMPTY_HEADER; 96];
            let mut request = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(end)) = request.parse(&stream) {
                prop_assert_eq!(head_end(&stream, &mut 0), Some(end));
                prop_assert_eq!(scan_head(&stream), Some((end, oracle(&request))));
                let split = split.min(stream.len());
                let mut framer = Framer::default();
                let (first, second) = (framer.advance(&stream[..split], u32::MAX), framer.advance(&stream[split..], u32::MAX));
                prop_assert_eq!(first.0 + second.0, stream.len());
                let (started, after) = (first.1 + second.1, stream.len() as u64 - end as u64);
                match oracle(&request) {
                    Body::None | Body::Length(0) => prop_assert_eq!((started, framer.state), (2, State::Between)),
                    Body::Length(n) if n > after => prop_assert_eq!((started, framer.state), (1, State::Body(n - after))),
                    Body::Length(_) => {}
                    Body::Chunked => prop_assert_eq!(started, 1),
                    Body::Opaque => prop_assert_eq!((started, framer.state), (1, State::Opaque)),
                }
            }
        }
    }

    /// The comparison above is only as good as the heads it is given: most must be ones
    /// httparse accepts, with each kind of body among them.
    #[test]
    fn the_generated_heads_are_mostly_accepted_and_varied() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut accepted, mut kinds) = (0, std::collections::HashSet::new());
        for _ in 0..1000 {
            let stream = any_head().new_tree(&mut runner).unwrap().current();
            let mut headers = [httparse::EMPTY_HEADER; 96];
            let mut request = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(_)) = request.parse(&stream) {
                accepted += 1;
                kinds.insert(std::mem::discriminant(&oracle(&request)));
            }
        }
        assert!(accepted > 300, "{accepted} of 1000 accepted");
        assert_eq!(kinds.len(), 4, "none, length, chunked and opaque bodies all occur");
    }

    #[test]
    fn an_endless_head_becomes_opaque() {
        let mut f = Framer::default();
        let mut started = 0;
        started += f.advance(b"GET / HTTP/1.1\r\nX: ", 1).1;
        let filler = vec![b'a'; 4096];
        for _ in 0..40 {
            assert_eq!(f.advance(&filler, 0).0, filler.len());
        }
        assert_eq!((started, f.state), (1, State::Opaque));
        assert!(f.head.capacity() == 0, "the buffered head is freed");
    }
}
