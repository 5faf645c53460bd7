//! The chunked transfer coding (RFC 9112, 7.1), read strictly.
//!
//! A chunked body is only safe when every reader of the bytes (a front end, then this server)
//! agrees where it ends. Each leniency is a place where two readers may disagree and a request be
//! smuggled: a bare LF taken as a line end, whitespace after the size, an empty size line taken as
//! the last chunk. So only the RFC's grammar is accepted, without its optional whitespace, and a
//! refusal comes at the first byte that cannot belong to a valid body, without waiting for more
//! bytes (a client that sent a bare LF must not be left waiting for a CRLF it will never send).
//!
//! The functions do no I/O: each looks at the bytes read so far and, as httparse does, keeps three
//! outcomes apart: [`Status::Partial`] (keep reading), an [`Error`] (400, or 431 for trailers
//! over [`MAX_TRAILERS`]), or [`Status::Complete`] with how many bytes it consumed. A body limit
//! is not theirs to apply: [`size_line`] hands back the size and the caller compares it.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*16HEXDIG                      ; 16 digits: the most a u64 holds
//! chunk-ext      = *( ";" chunk-ext-name [ "=" chunk-ext-val ] )   ; no BWS
//! chunk-ext-name = token
//! chunk-ext-val  = token / quoted-string
//! trailer-section = *( field-name ":" OWS field-value OWS CRLF )
//! ```

use super::HttpError;
use super::request::MAX_HEAD;

/// Longest chunk-size line, extensions and CRLF included, in bytes.
pub const MAX_LINE: usize = 1024;
/// Most hex digits in a chunk size (16 fill a `u64`).
pub const MAX_SIZE_DIGITS: usize = 16;
/// Longest trailer section (its field lines and the empty line that ends it), in bytes.
pub const MAX_TRAILERS: usize = MAX_HEAD;

/// A verdict on bytes that are not wrong (so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// Done: the value, with the bytes consumed.
    Complete(T),
    /// Every byte so far can start a valid element: read more.
    Partial,
}

/// Why a chunked body is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A chunk-size line does not start with a hex digit (an empty line among them).
    NoSize,
    /// A chunk size has more than [`MAX_SIZE_DIGITS`] digits.
    TooManyDigits,
    /// A space or tab outside a quoted string in a chunk-size line.
    Whitespace,
    /// Something after the size that is not a `;name[=value]` extension.
    BadExtension,
    /// A line that does not end with CRLF: a bare LF, or a CR not followed by LF.
    BadLineEnd,
    /// A chunk-size line over [`MAX_LINE`] bytes.
    LineTooLong,
    /// Chunk data not followed by CRLF.
    BadDataEnd,
    /// A trailer line that is not `name: value` with a token name and no control bytes.
    BadTrailer,
    /// A trailer section over [`MAX_TRAILERS`] bytes.
    TrailersTooLarge,
}

impl Error {
    /// The sentence sent with the 400 (or 431).
    pub fn message(self) -> &'static str {
        match self {
            Error::NoSize => "A chunk-size line does not start with a hex size.",
            Error::TooManyDigits => "A chunk size has more than 16 hex digits.",
            Error::Whitespace => "A chunk-size line must not contain spaces or tabs.",
            Error::BadExtension => "A chunk extension is not `;name` or `;name=value` with a token or quoted value.",
            Error::BadLineEnd => "A line of the chunked body does not end with CRLF.",
            Error::LineTooLong => "A chunk-size line is over 1 KiB.",
            Error::BadDataEnd => "A chunk does not end with CRLF.",
            Error::BadTrailer => "A trailer field is not `name: value` without control characters.",
            Error::TrailersTooLarge => "The trailer fields are over 8 KiB.",
        }
    }
}

impl From<Error> for HttpError {
    #[cold]
    fn from(e: Error) -> HttpError {
        match e {
            Error::TrailersTooLarge => HttpError::HeadTooLarge,
            e => HttpError::Malformed(e.message()),
        }
    }
}

/// Reads a chunk-size line from the start of `buf`: the size and the line's length (CRLF
/// included). A size of 0 is the last chunk; the trailer section follows.
pub fn size_line(buf: &[u8]) -> Result<Status<(u64, usize)>, Error> {
    within(buf, MAX_LINE, Error::LineTooLong, scan_size_line)
}

/// Checks what follows `size` bytes of chunk data (`after` starts right after them): the CRLF's
/// length, 2.
pub fn data_end(after: &[u8]) -> Result<Status<usize>, Error> {
    match after {
        [] | [b'\r'] => Ok(Status::Partial),
        [b'\r', b'\n', ..] => Ok(Status::Complete(2)),
        _ => Err(Error::BadDataEnd),
    }
}

/// Reads the trailer section after the last chunk's line, up to and including the empty line
/// that ends the body: its length. The fields are checked and dropped (no route uses them).
pub fn trailer_section(buf: &[u8]) -> Result<Status<usize>, Error> {
    within(buf, MAX_TRAILERS, Error::TrailersTooLarge, scan_trailers)
}

/// Applies `scan` to at most `limit` bytes of `buf`: an element not done within them is too long.
fn within<T>(
    buf: &[u8],
    limit: usize,
    too_long: Error,
    scan: fn(&[u8]) -> Result<Status<T>, Error>,
) -> Result<Status<T>, Error> {
    match scan(&buf[..buf.len().min(limit)])? {
        Status::Partial if buf.len() >= limit => Err(too_long),
        status => Ok(status),
    }
}

/// Where a chunk-size line scan is.
#[derive(Clone, Copy)]
enum Line {
    /// In the hex digits.
    Size,
    /// Right after `;`: a name must start.
    ExtStart,
    /// In an extension name.
    Name,
    /// Right after `=`: a token or a quoted string must start.
    ValueStart,
    /// In a token value.
    Token,
    /// In a quoted string.
    Quoted,
    /// Right after a backslash in a quoted string.
    Escaped,
    /// Right after a quoted string's closing quote.
    AfterQuote,
    /// After the CR: only LF may come.
    Cr,
}

fn scan_size_line(buf: &[u8]) -> Result<Status<(u64, usize)>, Error> {
    let mut size: u64 = 0;
    let mut digits = 0;
    let mut state = Line::Size;
    for (i, &b) in buf.iter().enumerate() {
        state = match (state, b) {
            (Line::Cr, b'\n') => return Ok(Status::Complete((size, i + 1))),
            (Line::Cr, _) | (_, b'\n') => return Err(Error::BadLineEnd),
            (Line::Size, _) if b.is_ascii_hexdigit() => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(Error::TooManyDigits);
                }
                digits += 1;
                size = size << 4 | u64::from(hex_value(b));
                Line::Size
            }
            (Line::Size, _) if digits == 0 => return Err(Error::NoSize),
            (Line::Quoted, b'"') => Line::AfterQuote,
            (Line::Quoted, b'\\') => Line::Escaped,
            (Line::Quoted, _) if is_qdtext(b) => Line::Quoted,
            (Line::Escaped, _) if b == b'\t' || b == b' ' || is_visible(b) => Line::Quoted,
            (Line::Quoted | Line::Escaped, _) => return Err(Error::BadExtension),
            (_, b' ' | b'\t') => return Err(Error::Whitespace),
            (Line::Size | Line::Name | Line::Token | Line::AfterQuote, b'\r') => Line::Cr,
            (Line::Size | Line::Name | Line::Token | Line::AfterQuote, b';') => Line::ExtStart,
            (Line::ExtStart | Line::Name, _) if is_tchar(b) => Line::Name,
            (Line::Name, b'=') => Line::ValueStart,
            (Line::ValueStart, b'"') => Line::Quoted,
            (Line::ValueStart | Line::Token, _) if is_tchar(b) => Line::Token,
            _ => return Err(Error::BadExtension),
        };
    }
    Ok(Status::Partial)
}

/// Where a trailer section scan is.
#[derive(Clone, Copy)]
enum Trailer {
    /// At the start of a line: a field name, or the CR of the empty line.
    LineStart,
    /// In a field name.
    Name,
    /// After the colon, in the value (with its optional whitespace).
    Value,
    /// After the CR of a field line.
    FieldCr,
    /// After the CR of the empty line that ends the body.
    EndCr,
}

fn scan_trailers(buf: &[u8]) -> Result<Status<usize>, Error> {
    let mut state = Trailer::LineStart;
    for (i, &b) in buf.iter().enumerate() {
        state = match (state, b) {
            (Trailer::EndCr, b'\n') => return Ok(Status::Complete(i + 1)),
            (Trailer::FieldCr, b'\n') => Trailer::LineStart,
            (Trailer::EndCr | Trailer::FieldCr, _) | (_, b'\n') => return Err(Error::BadLineEnd),
            (Trailer::LineStart, b'\r') => Trailer::EndCr,
            (Trailer::LineStart | Trailer::Name, _) if is_tchar(b) => Trailer::Name,
            (Trailer::Name, b':') => Trailer::Value,
            (Trailer::Value, b'\r') => Trailer::FieldCr,
            // HTAB, SP, VCHAR and obs-text: every byte but the other controls and DEL.
            (Trailer::Value, _) if b == b'\t' || (b >= 0x20 && b != 0x7f) => Trailer::Value,
            _ => return Err(Error::BadTrailer),
        };
    }
    Ok(Status::Partial)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// `tchar` of RFC 9110, 5.6.2.
fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// `qdtext` of RFC 9110, 5.6.4: HTAB, SP and visible bytes but `"` and `\`.
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || b == b' ' || (is_visible(b) && b != b'"' && b != b'\\')
}

/// VCHAR or obs-text.
fn is_visible(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parser says.
    type Outcome<T> = Result<Status<T>, Error>;
    /// A table row: a name, the input, the outcome.
    type Row<'a, T> = (&'a str, &'a [u8], Outcome<T>);

    #[test]
    fn outcomes_of_reading_a_size_line() {
        let long = format!("1;a={}\r\n", "b".repeat(MAX_LINE));
        let longest = format!("1;a={}\r\n", "b".repeat(MAX_LINE - 6));
        let table: &[Row<(u64, usize)>] = &[
            ("a size", b"1a\r\nxyz", Ok(Status::Complete((0x1a, 4)))),
            ("the last chunk", b"0\r\n\r\n", Ok(Status::Complete((0, 3)))),
            ("16 digits", b"000000000000000F\r\n", Ok(Status::Complete((15, 18)))),
            ("the largest size", b"ffffffffffffffff\r\n", Ok(Status::Complete((u64::MAX, 18)))),
            ("extensions", b"5;a;b=c;d=\"e \\\" f\"\r\n", Ok(Status::Complete((5, 20)))),
            ("an empty quoted value", b"5;a=\"\"\r\n", Ok(Status::Complete((5, 8)))),
            ("obs-text in quotes", b"5;a=\"\xe9\"\r\n", Ok(Status::Complete((5, 9)))),
            ("nothing yet", b"", Ok(Status::Partial)),
            ("digits only", b"12", Ok(Status::Partial)),
            ("a CR", b"12\r", Ok(Status::Partial)),
            ("an open extension", b"5;", Ok(Status::Partial)),
            ("an open value", b"5;a=", Ok(Status::Partial)),
            ("an open quote", b"5;a=\"x\\", Ok(Status::Partial)),
            ("17 digits", b"00000000000000001\r\n", Err(Error::TooManyDigits)),
            ("an empty line", b"\r\n", Err(Error::NoSize)),
            ("a CR first", b"\r", Err(Error::NoSize)),
            ("an extension only", b";a\r\n", Err(Error::NoSize)),
            ("a sign", b"+5\r\n", Err(Error::NoSize)),
            ("a space after the size", b"5 \r\n", Err(Error::Whitespace)),
            ("a tab before an extension", b"5\t;a\r\n", Err(Error::Whitespace)),
            ("a space around =", b"5;a =b\r\n", Err(Error::Whitespace)),
            ("a bare LF", b"5\n", Err(Error::BadLineEnd)),
            ("a bare LF in an extension", b"5;a\nb\r\n", Err(Error::BadLineEnd)),
            ("a CR without LF", b"5\rX", Err(Error::BadLineEnd)),
            ("a LF in quotes", b"5;a=\"\n\"\r\n", Err(Error::BadLineEnd)),
            ("a CR in quotes", b"5;a=\"\r\n\"\r\n", Err(Error::BadExtension)),
            ("an empty name", b"5;\r\n", Err(Error::BadExtension)),
            ("an empty value", b"5;a=\r\n", Err(Error::BadExtension)),
            ("junk after the size", b"5x\r\n", Err(Error::BadExtension)),
            ("text after a quote", b"5;a=\"b\"c\r\n", Err(Error::BadExtension)),
            ("a control byte", b"5;a\x01\r\n", Err(Error::BadExtension)),
            ("a line over 1 KiB", long.as_bytes(), Err(Error::LineTooLong)),
            ("1 KiB unfinished", &long.as_bytes()[..MAX_LINE], Err(Error::LineTooLong)),
            ("a line of exactly 1 KiB", longest.as_bytes(), Ok(Status::Complete((1, MAX_LINE)))),
        ];
        for (name, bytes, want) in table {
            assert_eq!(&size_line(bytes), want, "{name}");
        }
    }

    #[test]
    fn outcomes_of_reading_a_data_end() {
        let table: &[(&[u8], Outcome<usize>)] = &[
            (b"", Ok(Status::Partial)),
            (b"\r", Ok(Status::Partial)),
            (b"\r\n0", Ok(Status::Complete(2))),
            (b"\n", Err(Error::BadDataEnd)),
            (b"\rX", Err(Error::BadDataEnd)),
            (b"X", Err(Error::BadDataEnd)),
        ];
        for (bytes, want) in table {
            assert_eq!(&data_end(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn outcomes_of_reading_trailers() {
        let big = format!("X: {}\r\n\r\n", "a".repeat(MAX_TRAILERS));
        let table: &[Row<usize>] = &[
            ("none", b"\r\nGET", Ok(Status::Complete(2))),
            ("two fields", b"A: 1\r\nB:\t2 \xff \r\n\r\n", Ok(Status::Complete(17))),
            ("an empty value", b"A:\r\n\r\n", Ok(Status::Complete(6))),
            ("nothing yet", b"", Ok(Status::Partial)),
            ("a CR", b"\r", Ok(Status::Partial)),
            ("a field", b"A: 1\r\n", Ok(Status::Partial)),
            ("a bare LF", b"\n", Err(Error::BadLineEnd)),
            ("a bare LF after a field", b"A: 1\n", Err(Error::BadLineEnd)),
            ("a CR without LF", b"\rX", Err(Error::BadLineEnd)),
            ("a control byte", b"A: \x01\r\n\r\n", Err(Error::BadTrailer)),
            ("DEL", b"A: \x7f\r\n\r\n", Err(Error::BadTrailer)),
            ("a space before the colon", b"A : 1\r\n\r\n", Err(Error::BadTrailer)),
            ("a folded line", b"A: 1\r\n 2\r\n\r\n", Err(Error::BadTrailer)),
            ("no colon", b"A\r\n\r\n", Err(Error::BadTrailer)),
            ("no name", b": 1\r\n\r\n", Err(Error::BadTrailer)),
            ("over 8 KiB", big.as_bytes(), Err(Error::TrailersTooLarge)),
        ];
        for (name, bytes, want) in table {
            assert_eq!(&trailer_section(bytes), want, "{name}");
        }
    }
}
