//! X12 tokenizer: splits a body into interchanges and their segments with the delimiters each
//! ISA header declares (no delimiter is ever assumed). Zero-copy: segments and elements borrow
//! the body, so memory stays proportional to the input whatever the envelope claims.

use super::malformed;
use crate::partners::PartnerError;

/// The ISA segment is fixed-width: 106 bytes including its terminator.
pub const ISA_LEN: usize = 106;

/// ISA plus its 16 elements.
const ISA_ELEMENTS: usize = 17;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The three delimiters of one interchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Between elements: the byte right after `ISA`.
    pub element: u8,
    /// Between components of a composite element: ISA16.
    pub component: u8,
    /// After each segment: the byte after ISA16. Line ends after it are layout, not data.
    pub segment: u8,
}

impl Delimiters {
    /// Whether these three bytes can delimit X12 at all. Letters and digits would cut values
    /// apart; a space would be indistinguishable from the padding of fixed-width elements; a
    /// line end between elements would be eaten as layout around segments.
    pub fn usable(self) -> bool {
        let [element, component, segment] = [self.element, self.component, self.segment];
        let data_like = |b: u8| b.is_ascii_alphanumeric() || b == b' ';
        element != component
            && element != segment
            && component != segment
            && !data_like(element)
            && !data_like(component)
            && !data_like(segment)
            && !is_layout(element)
            && !is_layout(component)
    }
}

/// One segment: its id and elements, all-space elements already made empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// 1-based position of the segment in the body, for messages that must point somewhere
    /// without quoting partner data.
    pub position: usize,
    /// `elements[0]` is the segment id; `elements[n]` is element `n` as X12 numbers them.
    pub elements: Vec<&'a [u8]>,
}

impl<'a> Segment<'a> {
    pub fn id(&self) -> &'a [u8] {
        self.elements.first().copied().unwrap_or_default()
    }

    pub fn is(&self, id: &str) -> bool {
        self.id() == id.as_bytes()
    }

    /// Element `n` (1-based, `B302` is `element(2)`) as sent; empty when absent.
    pub fn element(&self, n: usize) -> &'a [u8] {
        self.elements.get(n).copied().unwrap_or_default()
    }

    /// Element `n` without its space padding, `None` when empty. Bytes that are not UTF-8
    /// (some senders use Latin-1) become U+FFFD rather than failing the whole body.
    pub fn text(&self, n: usize) -> Option<String> {
        let value = self.element(n).trim_ascii();
        (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned())
    }
}

/// One ISA…IEA interchange: its delimiters and every segment from ISA to IEA inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interchange<'a> {
    pub delimiters: Delimiters,
    pub segments: Vec<Segment<'a>>,
}

/// Splits `body` into interchanges. A UTF-8 BOM and whitespace around segments are layout;
/// empty elements are kept because X12 elements are positional.
pub fn tokenize(body: &[u8]) -> Result<Vec<Interchange<'_>>, PartnerError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let mut interchanges = Vec::new();
    let mut pos = 0;
    let mut position = 0;
    loop {
        pos += body[pos..].iter().take_while(|b| is_layout(**b)).count();
        if pos == body.len() {
            break;
        }
        let (interchange, next) = read_interchange(body, pos, &mut position)?;
        interchanges.push(interchange);
        pos = next;
    }
    if interchanges.is_empty() {
        return Err(malformed("body holds no ISA interchange"));
    }
    Ok(interchanges)
}

/// Reads the interchange whose ISA starts at `start`; returns it and the offset after its IEA.
fn read_interchange<'a>(
    body: &'a [u8],
    start: usize,
    position: &mut usize,
) -> Result<(Interchange<'a>, usize), PartnerError> {
    let rest = &body[start..];
    if !rest.starts_with(b"ISA") {
        return Err(malformed(format!(
            "expected an ISA segment at byte {start}"
        )));
    }
    let Some(header) = rest.get(..ISA_LEN) else {
        return Err(malformed(format!(
            "ISA segment at byte {start} is shorter than its fixed {ISA_LEN} bytes"
        )));
    };
    let delimiters = Delimiters {
        element: header[3],
        component: header[104],
        segment: header[105],
    };
    if !delimiters.usable() {
        return Err(malformed(format!(
            "ISA segment at byte {start} declares unusable delimiters"
        )));
    }
    let isa = split_elements(&header[..ISA_LEN - 1], delimiters.element);
    if isa.len() != ISA_ELEMENTS || isa[16].len() != 1 {
        return Err(malformed(format!(
            "ISA segment at byte {start} does not have 16 fixed-width elements"
        )));
    }
    *position += 1;
    let mut segments = vec![Segment {
        position: *position,
        elements: isa,
    }];

    let mut pos = start + ISA_LEN;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|b| *b == delimiters.segment)
            .map_or(body.len(), |offset| pos + offset);
        let raw = body[pos..end].trim_ascii();
        pos = (end + 1).min(body.len());
        if raw.is_empty() {
            continue;
        }
        *position += 1;
        let segment = Segment {
            position: *position,
            elements: split_elements(raw, delimiters.element),
        };
        if !valid_segment_id(segment.id()) {
            return Err(malformed(format!(
                "segment {} has no valid segment id",
                segment.position
            )));
        }
        if segment.is("ISA") {
            return Err(malformed(format!(
                "ISA at segment {} starts before the previous interchange's IEA",
                segment.position
            )));
        }
        let done = segment.is("IEA");
        segments.push(segment);
        if done {
            return Ok((
                Interchange {
                    delimiters,
                    segments,
                },
                pos,
            ));
        }
    }
    Err(malformed(format!(
        "interchange at segment {} has no IEA trailer",
        segments[0].position
    )))
}

fn split_elements(raw: &[u8], separator: u8) -> Vec<&[u8]> {
    raw.split(|b| *b == separator)
        .map(|element| {
            if element.iter().all(|b| *b == b' ') {
                &element[..0]
            } else {
                element
            }
        })
        .collect()
}

/// Two or three upper-case letters or digits, starting with a letter (`ST`, `B10`, `AT7`).
fn valid_segment_id(id: &[u8]) -> bool {
    (2..=3).contains(&id.len())
        && id[0].is_ascii_uppercase()
        && id
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whitespace that may surround segments (line ends, indentation).
fn is_layout(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// Composite element split on the component separator.
pub fn components(element: &[u8], delimiters: Delimiters) -> impl Iterator<Item = &[u8]> {
    element.split(move |b| *b == delimiters.component)
}
