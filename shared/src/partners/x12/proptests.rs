//! Property tests: the adapter never panics whatever the bytes, and the tokenizer gives back
//! exactly the segments that were written, whichever delimiters the ISA header declares.

use proptest::prelude::*;

use super::tokenizer::{Delimiters, ISA_LEN, components, tokenize};
use super::*;
use crate::webhook::{WebhookBody, ingress_id};

fn webhook_for(body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id("relay", "any"),
        partner: "relay".into(),
        format: FORMAT.into(),
        delivery_id: "any".into(),
        received_at: "2024-08-02T19:26:53Z".parse().unwrap(),
        content_type: None,
        body: WebhookBody::from_bytes(body),
    }
}

/// Runs everything the adapter exposes on `body`, in both modes; only panics can fail this.
fn read_everything(body: &[u8]) {
    for strict in [false, true] {
        let options = Options {
            strict,
            ..Options::default()
        };
        let _ = inspect(body, &options);
        let _ = transform(&webhook_for(body), body, &options);
    }
}

fn isa_header(delimiters: Delimiters, control: &str) -> Vec<u8> {
    let text = format!(
        "ISA*00*{:10}*00*{:10}*ZZ*{:<15}*ZZ*{:<15}*240801*1200*U*00401*{control:0>9}*0*P*",
        "", "", "RELAY", "RECEIVER"
    );
    let mut header: Vec<u8> = text
        .bytes()
        .map(|b| if b == b'*' { delimiters.element } else { b })
        .collect();
    header.push(delimiters.component);
    header.push(delimiters.segment);
    header
}

fn delimiters() -> impl Strategy<Value = Delimiters> {
    let element = prop::sample::select(vec![b'*', b'|', b'^', b'!', b'+', 0x1d, 0xe2]);
    let component = prop::sample::select(vec![b':', b'>', b'\\', b'^', b'<', 0x1f]);
    let segment = prop::sample::select(vec![b'~', b'\n', b'\r', b'|', b'.', b'\'', 0x1c, b'^']);
    (element, component, segment)
        .prop_map(|(element, component, segment)| Delimiters {
            element,
            component,
            segment,
        })
        .prop_filter("three distinct usable delimiters", |d| d.usable())
}

/// Component text: never a delimiter candidate, never padded (padding is layout).
fn component() -> impl Strategy<Value = String> {
    "([A-Za-z0-9#&()/@=-]([A-Za-z0-9 #&()/@=-]{0,6}[A-Za-z0-9#&()/@=-])?)?"
}

fn element() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(component(), 1..4)
}

/// A segment that is neither ISA nor IEA (those frame the interchange).
fn segment() -> impl Strategy<Value = (String, Vec<Vec<String>>)> {
    (
        "[A-Z][A-Z0-9]{1,2}".prop_filter("not an envelope id", |id| id != "ISA" && id != "IEA"),
        prop::collection::vec(element(), 0..8),
    )
}

fn write_segment(
    out: &mut Vec<u8>,
    delimiters: Delimiters,
    id: &str,
    elements: &[Vec<String>],
    after: &[u8],
) {
    out.extend_from_slice(id.as_bytes());
    for element in elements {
        out.push(delimiters.element);
        for (index, component) in element.iter().enumerate() {
            if index > 0 {
                out.push(delimiters.component);
            }
            out.extend_from_slice(component.as_bytes());
        }
    }
    out.push(delimiters.segment);
    out.extend_from_slice(after);
}

/// Segments that look like 214s and 210s, in shuffled order, to reach past the envelope.
fn plausible_segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "GS*QM*A*B*20240801*1200*7*X*004010",
        "GS*IM*A*B*240801*1200*8*X*004010",
        "ST*214*0001",
        "ST*210*0002",
        "B10*PRO*SHIP*SCAC",
        "B10***",
        "L11*REF*BM",
        "LX*1",
        "AT7*X6*NS***20240801*0930*ET",
        "AT7*AG*AO***20240803*1700*ZZ",
        "AT7***AA",
        "AT7*D1*NS***99999999*9999*PT",
        "MS1*CITY*ST*US",
        "B3**INV*PRO*PP**20240801*-999999999999999999****SCAC",
        "B3**INV**PP**240801*100*20240802*035",
        "C3*usd",
        "N1*SH*NAME**ID",
        "N9*BM*BOL",
        "L1*1***999999999999999999****400",
        "L1*1***-1****XYZ",
        "L1*1",
        "L3*****100",
        "SE*5*0001",
        "SE*x*0002",
        "GE*1*7",
        "TA1*1",
    ])
    .prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        read_everything(&body);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_isa_never_panic(
        delimiters in delimiters(),
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut body = isa_header(delimiters, "1");
        body.extend_from_slice(&tail);
        read_everything(&body);
    }

    #[test]
    fn shuffled_plausible_segments_never_panic(
        segments in prop::collection::vec(plausible_segment(), 0..40),
        close in any::<bool>(),
    ) {
        let delimiters = Delimiters { element: b'*', component: b'>', segment: b'~' };
        let mut body = isa_header(delimiters, "1");
        for segment in &segments {
            body.extend_from_slice(segment.as_bytes());
            body.push(b'~');
        }
        if close {
            body.extend_from_slice(b"IEA*1*000000001~");
        }
        read_everything(&body);
    }

    #[test]
    fn delimiters_round_trip(
        delimiters in delimiters(),
        segments in prop::collection::vec(segment(), 0..12),
        layout in prop::sample::select(vec!["", "\n", "\r\n", "\r\n   "]),
        bom in any::<bool>(),
    ) {
        let mut body = Vec::new();
        if bom {
            body.extend_from_slice(b"\xEF\xBB\xBF");
        }
        body.extend_from_slice(&isa_header(delimiters, "42"));
        body.extend_from_slice(layout.as_bytes());
        for (id, elements) in &segments {
            write_segment(&mut body, delimiters, id, elements, layout.as_bytes());
        }
        write_segment(&mut body, delimiters, "IEA", &[vec!["1".into()], vec!["000000042".into()]], b"");
        prop_assert_eq!(body.len() >= ISA_LEN, true);

        let interchanges = tokenize(&body).unwrap();
        prop_assert_eq!(interchanges.len(), 1);
        let interchange = &interchanges[0];
        prop_assert_eq!(interchange.delimiters, delimiters);
        let control = interchange.segments[0].text(13);
        prop_assert_eq!(control.as_deref(), Some("000000042"));
        let read: Vec<(String, Vec<Vec<String>>)> = interchange.segments
            [1..interchange.segments.len() - 1]
            .iter()
            .map(|segment| {
                let id = String::from_utf8(segment.id().to_vec()).unwrap();
                let elements = segment.elements[1..]
                    .iter()
                    .map(|element| {
                        components(element, delimiters)
                            .map(|c| String::from_utf8(c.to_vec()).unwrap())
                            .collect()
                    })
                    .collect();
                (id, elements)
            })
            .collect();
        prop_assert_eq!(read, segments);
    }
}
