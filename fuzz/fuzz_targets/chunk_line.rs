//! `http::chunked` (chunk-size lines, chunk data ends, the trailer section) against a reading of
//! RFC 9112, 7.1 written here in another style: a recursive-descent parser over the ABNF that says
//! where it stopped, with the limits applied afterwards from the element's start. On arbitrary
//! bytes the two must agree on the verdict (more bytes needed, refused, too long, or done with the
//! same size and length), both for one line and for a whole chunked body decoded element by
//! element as `Conn::read_chunked` does; nothing panics and nothing consumes more than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_progress::internals::chunked::{self, Error, MAX_LINE, MAX_TRAILERS, Status};

/// A verdict both readings are brought to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict<T> {
    /// Every byte so far can begin a valid element.
    More,
    /// A byte that cannot come where it is.
    Bad,
    /// Not done within this many bytes from the element's start.
    TooLong(usize),
    /// Done: the value.
    Done(T),
}

impl<T> Verdict<T> {
    /// A verdict that is not `Done`, as a verdict on something else.
    fn cast<U>(self) -> Verdict<U> {
        match self {
            Verdict::More => Verdict::More,
            Verdict::Bad => Verdict::Bad,
            Verdict::TooLong(limit) => Verdict::TooLong(limit),
            Verdict::Done(_) => unreachable!("only verdicts that stop a body are cast"),
        }
    }
}

// ---- The reference reading -------------------------------------------------------------------

/// Why the reference stopped short of a whole element.
#[derive(Debug)]
enum Stop {
    /// The input ended where the grammar wants another byte.
    More,
    /// The byte at this offset cannot come next.
    Bad(usize),
}

/// The input and how far the grammar has read.
struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn peek(&self) -> Result<u8, Stop> {
        self.bytes.get(self.at).copied().ok_or(Stop::More)
    }

    /// One byte that `ok` accepts.
    fn one(&mut self, ok: impl Fn(u8) -> bool) -> Result<(), Stop> {
        if !ok(self.peek()?) {
            return Err(Stop::Bad(self.at));
        }
        self.at += 1;
        Ok(())
    }

    /// `*rule` of single bytes; it always ends by looking at the byte after the run.
    fn many(&mut self, ok: impl Fn(u8) -> bool) -> Result<(), Stop> {
        while ok(self.peek()?) {
            self.at += 1;
        }
        Ok(())
    }
}

const HTAB: u8 = 0x09;
const SP: u8 = 0x20;

/// `HEXDIG` (RFC 5234, with the case-insensitive letters of RFC 9110).
fn hexdig(b: u8) -> bool {
    b"0123456789ABCDEFabcdef".contains(&b)
}

/// `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `VCHAR = %x21-7E`
fn vchar(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// `obs-text = %x80-FF`
fn obs_text(b: u8) -> bool {
    b >= 0x80
}

/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text`
fn qdtext(b: u8) -> bool {
    b == HTAB || b == SP || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b) || obs_text(b)
}

/// `token = 1*tchar`
fn token(i: &mut Input) -> Result<(), Stop> {
    i.one(tchar)?;
    i.many(tchar)
}

/// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`, with
/// `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`.
fn quoted_string(i: &mut Input) -> Result<(), Stop> {
    i.one(|b| b == b'"')?;
    loop {
        match i.peek()? {
            b'"' => {
                i.at += 1;
                return Ok(());
            }
            b'\\' => {
                i.at += 1;
                i.one(|b| b == HTAB || b == SP || vchar(b) || obs_text(b))?;
            }
            _ => i.one(qdtext)?,
        }
    }
}

/// `CRLF`
fn crlf(i: &mut Input) -> Result<(), Stop> {
    i.one(|b| b == b'\r')?;
    i.one(|b| b == b'\n')
}

/// `chunk-size = 1*16HEXDIG` (the RFC sets no bound; the server's profile takes what a u64 holds).
fn chunk_size(i: &mut Input) -> Result<u64, Stop> {
    let start = i.at;
    i.one(hexdig)?;
    while i.at - start < 16 && hexdig(i.peek()?) {
        i.at += 1;
    }
    let digits = std::str::from_utf8(&i.bytes[start..i.at]).unwrap();
    Ok(u64::from_str_radix(digits, 16).unwrap())
}

/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )` with every BWS
/// empty (the server's profile), `chunk-ext-name = token`, `chunk-ext-val = token / quoted-string`.
fn chunk_ext(i: &mut Input) -> Result<(), Stop> {
    while i.peek()? == b';' {
        i.at += 1;
        token(i)?;
        if i.peek()? == b'=' {
            i.at += 1;
            if i.peek()? == b'"' { quoted_string(i)? } else { token(i)? }
        }
    }
    Ok(())
}

/// `chunk-size [ chunk-ext ] CRLF`, the line of a chunk and of the last chunk alike.
fn size_line(i: &mut Input) -> Result<u64, Stop> {
    let size = chunk_size(i)?;
    chunk_ext(i)?;
    crlf(i)?;
    Ok(size)
}

/// `field-line = field-name ":" OWS field-value OWS` with `field-name = token`: the value and the
/// whitespace around it together are any run of SP, HTAB, VCHAR and obs-text.
fn field_line(i: &mut Input) -> Result<(), Stop> {
    token(i)?;
    i.one(|b| b == b':')?;
    i.many(|b| b == SP || b == HTAB || vchar(b) || obs_text(b))
}

/// `trailer-section CRLF`, that is `*( field-line CRLF ) CRLF`.
fn trailer_section(i: &mut Input) -> Result<(), Stop> {
    loop {
        if i.peek()? == b'\r' {
            return crlf(i);
        }
        field_line(i)?;
        crlf(i)?;
    }
}

/// The verdict on an element that began at `start` and is limited to `limit` bytes: whatever
/// happens at or beyond the limit means the element is too long.
fn judge<T>(len: usize, start: usize, limit: usize, result: Result<(T, usize), Stop>) -> Verdict<(T, usize)> {
    match result {
        Ok((value, end)) if end - start <= limit => Verdict::Done((value, end - start)),
        Err(Stop::Bad(at)) if at - start < limit => Verdict::Bad,
        Err(Stop::More) if len - start < limit => Verdict::More,
        _ => Verdict::TooLong(limit),
    }
}

fn reference_line(bytes: &[u8]) -> Verdict<(u64, usize)> {
    let mut i = Input { bytes, at: 0 };
    let result = size_line(&mut i);
    judge(bytes.len(), 0, MAX_LINE, result.map(|size| (size, i.at)))
}

fn reference_trailers(bytes: &[u8]) -> Verdict<usize> {
    let mut i = Input { bytes, at: 0 };
    let result = trailer_section(&mut i);
    match judge(bytes.len(), 0, MAX_TRAILERS, result.map(|()| ((), i.at))) {
        Verdict::Done(((), len)) => Verdict::Done(len),
        other => other.cast(),
    }
}

/// `chunked-body = *chunk last-chunk trailer-section CRLF`, with
/// `chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF`: the data and the length read.
fn reference_body(bytes: &[u8]) -> Verdict<(Vec<u8>, usize)> {
    let mut i = Input { bytes, at: 0 };
    let mut body = Vec::new();
    loop {
        let start = i.at;
        let result = size_line(&mut i);
        let size = match judge(bytes.len(), start, MAX_LINE, result.map(|size| (size, i.at))) {
            Verdict::Done((size, _)) => size,
            other => return other.cast(),
        };
        if size == 0 {
            let start = i.at;
            let result = trailer_section(&mut i);
            return match judge(bytes.len(), start, MAX_TRAILERS, result.map(|()| ((), i.at))) {
                Verdict::Done(_) => Verdict::Done((body, i.at)),
                other => other.cast(),
            };
        }
        // chunk-data = 1*OCTET, `size` of them.
        if ((bytes.len() - i.at) as u64) < size {
            return Verdict::More;
        }
        body.extend_from_slice(&bytes[i.at..i.at + size as usize]);
        i.at += size as usize;
        match crlf(&mut i) {
            Ok(()) => {}
            Err(Stop::More) => return Verdict::More,
            Err(Stop::Bad(_)) => return Verdict::Bad,
        }
    }
}

// ---- The server's parser, brought to the same verdicts -----------------------------------------

fn verdict<T>(result: Result<Status<T>, Error>) -> Verdict<T> {
    match result {
        Ok(Status::Complete(value)) => Verdict::Done(value),
        Ok(Status::Partial) => Verdict::More,
        Err(Error::LineTooLong) => Verdict::TooLong(MAX_LINE),
        Err(Error::TrailersTooLarge) => Verdict::TooLong(MAX_TRAILERS),
        Err(_) => Verdict::Bad,
    }
}

/// A whole body as `Conn::read_chunked` walks it, without a body limit.
fn walk(bytes: &[u8]) -> Verdict<(Vec<u8>, usize)> {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let (size, line) = match verdict(chunked::size_line(&bytes[at..])) {
            Verdict::Done(done) => done,
            other => return other.cast(),
        };
        assert!(line <= bytes.len() - at);
        at += line;
        if size == 0 {
            return match verdict(chunked::trailer_section(&bytes[at..])) {
                Verdict::Done(len) => {
                    assert!(len <= bytes.len() - at);
                    Verdict::Done((body, at + len))
                }
                other => other.cast(),
            };
        }
        // The data end is looked at once a byte after the data is there.
        let Some(size) = usize::try_from(size).ok().filter(|&size| size < bytes.len() - at) else {
            return Verdict::More;
        };
        match chunked::data_end(&bytes[at + size..]) {
            Ok(Status::Complete(crlf)) => {
                assert_eq!(crlf, 2);
                body.extend_from_slice(&bytes[at..at + size]);
                at += size + crlf;
            }
            Ok(Status::Partial) => return Verdict::More,
            Err(e) => {
                assert_eq!(e, Error::BadDataEnd);
                return Verdict::Bad;
            }
        }
    }
}

/// The start of an input, for a failure's message (the input itself is in the artifact).
fn shown(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&data[..data.len().min(160)])
}

fuzz_target!(|data: &[u8]| {
    let line = chunked::size_line(data);
    assert!(!matches!(line, Err(Error::BadDataEnd | Error::BadTrailer | Error::TrailersTooLarge)), "{line:?}");
    if let Ok(Status::Complete((size, len))) = line {
        assert!(len <= data.len() && len <= MAX_LINE, "{len} of {}", data.len());
        // The line alone reads the same: nothing after it was looked at.
        assert_eq!(chunked::size_line(&data[..len]), Ok(Status::Complete((size, len))));
    }
    assert_eq!(verdict(line), reference_line(data), "a size line: {:?}", shown(data));

    let trailers = chunked::trailer_section(data);
    assert!(
        matches!(trailers, Ok(_) | Err(Error::BadLineEnd | Error::BadTrailer | Error::TrailersTooLarge)),
        "{trailers:?}"
    );
    if let Ok(Status::Complete(len)) = trailers {
        assert!(len <= data.len() && len <= MAX_TRAILERS, "{len} of {}", data.len());
    }
    assert_eq!(verdict(trailers), reference_trailers(data), "trailers: {:?}", shown(data));

    let body = walk(data);
    if let Verdict::Done((decoded, len)) = &body {
        assert!(*len <= data.len() && decoded.len() <= *len);
    }
    assert_eq!(body, reference_body(data), "a body: {:?}", shown(data));
});
