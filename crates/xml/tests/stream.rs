//! The stream parser against RFC 6120: the §9 reference conversation, chunking, namespaces,
//! escaping, every error class (§4.9.3, §11) and stream restarts (§4.3.3).

#![allow(clippy::unwrap_used)]

use corvid_xml::{
    Attr, Element, Limits, Node, Parser, StreamEvent, StreamHeader, XmlError, NS_CLIENT, NS_STREAM,
    NS_XML,
};

const HEADER: &str = "<?xml version='1.0'?><stream:stream from='juliet@im.example.com' \
     to='im.example.com' version='1.0' xml:lang='en' xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams'>";
const HEADER_NO_DECL: &str = "<stream:stream to='im.example.com' version='1.0' \
     xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// RFC 6120 §9.1 client side: TLS (§9.1.2), SASL (§9.1.3), bind (§9.1.4), a message (§9.1.5),
/// with the stream restarts after `<starttls/>` and `<auth/>` and a close (§9.1.6).
fn conversation() -> String {
    let mut s = String::new();
    s.push_str(HEADER);
    s.push_str("\n<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    s.push_str(HEADER);
    s.push_str(
        "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"SCRAM-SHA-1\">\
         biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ==</auth>",
    );
    s.push_str(HEADER);
    s.push_str(
        "\n  <iq id='yhc13a95' type='set'>\n    <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         \n      <resource>balcony</resource>\n    </bind>\n  </iq>\n ",
    );
    s.push_str(
        "<message from='juliet@im.example.com/balcony' id='ju2ba41c' \
         to='romeo@example.net/orchard' type='chat' xml:lang='en'>\
         <body>Art thou not Romeo, and a Montague?</body></message>  \n",
    );
    s.push_str("</stream:stream>\n");
    s
}

/// Feeds `input` in chunks of the given sizes, draining events after each chunk. Restarts
/// the stream after `<starttls/>` and `<auth/>`, as a server does after `<proceed/>` and
/// `<success/>`. Stops at the first error.
fn run(
    input: &[u8],
    mut sizes: impl FnMut() -> usize,
    limits: Limits,
) -> Result<Vec<StreamEvent>, XmlError> {
    let mut p = Parser::new(limits);
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        while let Some(ev) = p.next_event()? {
            let restart =
                matches!(&ev, StreamEvent::Element(e) if e.name == "starttls" || e.name == "auth");
            out.push(ev);
            if restart {
                p.reset();
            }
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let n = sizes().clamp(1, rest.len());
        p.feed(&rest[..n]);
        rest = &rest[n..];
    }
}

fn parse_all(input: &str) -> Result<Vec<StreamEvent>, XmlError> {
    run(input.as_bytes(), || usize::MAX, Limits::default())
}

fn parse_bytes(input: &[u8], limits: Limits) -> Result<Vec<StreamEvent>, XmlError> {
    run(input, || usize::MAX, limits)
}

/// The first error `input` produces, fed whole and byte by byte (both must agree).
fn error_of(input: &[u8], limits: Limits) -> XmlError {
    let whole = run(input, || usize::MAX, limits).expect_err("whole input must fail");
    let bytewise = run(input, || 1, limits).expect_err("bytewise input must fail");
    assert_eq!(whole, bytewise, "chunking changed the error");
    whole
}

fn stanza(xml: &str) -> Element {
    let events = parse_all(&format!("{HEADER_NO_DECL}{xml}")).unwrap();
    match events.as_slice() {
        [StreamEvent::Open(_), StreamEvent::Element(e)] => e.clone(),
        other => panic!("expected one element, got {other:?}"),
    }
}

fn in_stream(xml: &str) -> Vec<u8> {
    format!("{HEADER_NO_DECL}{xml}").into_bytes()
}

/// Deterministic xorshift, so chunkings are random but reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn lang(value: &str) -> Attr {
    Attr {
        ns: Some(NS_XML.into()),
        name: "lang".into(),
        value: value.into(),
    }
}

#[test]
fn rfc6120_9_1_conversation_events() {
    let events = parse_all(&conversation()).unwrap();
    assert_eq!(events.len(), 8, "{events:#?}");
    let header = StreamHeader {
        ns: NS_STREAM.into(),
        name: "stream".into(),
        default_ns: Some(NS_CLIENT.into()),
        attrs: vec![
            Attr {
                ns: None,
                name: "from".into(),
                value: "juliet@im.example.com".into(),
            },
            Attr {
                ns: None,
                name: "to".into(),
                value: "im.example.com".into(),
            },
            Attr {
                ns: None,
                name: "version".into(),
                value: "1.0".into(),
            },
            lang("en"),
        ],
    };
    assert_eq!(events[0], StreamEvent::Open(header.clone()));
    if let StreamEvent::Open(h) = &events[0] {
        assert_eq!(h.attr("to"), Some("im.example.com"));
        assert_eq!(h.lang(), Some("en"));
    }
    assert_eq!(
        events[1],
        StreamEvent::Element(Element::new("starttls", "urn:ietf:params:xml:ns:xmpp-tls"))
    );
    assert_eq!(events[2], StreamEvent::Open(header.clone()));
    let StreamEvent::Element(auth) = &events[3] else {
        panic!()
    };
    assert!(auth.is("auth", "urn:ietf:params:xml:ns:xmpp-sasl"));
    assert_eq!(auth.attr("mechanism"), Some("SCRAM-SHA-1"));
    assert_eq!(
        auth.text(),
        "biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ=="
    );
    assert_eq!(events[4], StreamEvent::Open(header));
    let StreamEvent::Element(iq) = &events[5] else {
        panic!()
    };
    // §4.8.3: an unprefixed stanza inherits the stream's default namespace.
    assert!(iq.is("iq", NS_CLIENT));
    assert_eq!(iq.attr("id"), Some("yhc13a95"));
    let bind = iq
        .child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .unwrap();
    let resource = bind
        .child("resource", "urn:ietf:params:xml:ns:xmpp-bind")
        .unwrap();
    assert_eq!(resource.text(), "balcony");
    // Whitespace inside elements is character data and is kept.
    assert_eq!(iq.children.first(), Some(&Node::Text("\n    ".into())));
    assert_eq!(iq.children.len(), 3);
    let StreamEvent::Element(msg) = &events[6] else {
        panic!()
    };
    assert!(msg.is("message", NS_CLIENT));
    assert_eq!(msg.lang(), Some("en"));
    assert_eq!(
        msg.child("body", NS_CLIENT).unwrap().text(),
        "Art thou not Romeo, and a Montague?"
    );
    assert_eq!(events[7], StreamEvent::Close);
}

#[test]
fn rfc6120_9_1_conversation_byte_at_a_time_gives_identical_events() {
    let input = conversation();
    let whole = parse_all(&input).unwrap();
    let bytewise = run(input.as_bytes(), || 1, Limits::default()).unwrap();
    assert_eq!(whole, bytewise);
}

#[test]
fn rfc6120_9_1_conversation_random_chunkings_give_identical_events() {
    let input = conversation();
    let whole = parse_all(&input).unwrap();
    for seed in 1..200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let max = 1 + (seed as usize % 40);
        let events = run(
            input.as_bytes(),
            || 1 + (rng.next() as usize % max),
            Limits::default(),
        )
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(whole, events, "seed {seed}");
    }
}

#[test]
fn utf8_split_inside_a_multibyte_character() {
    let input = in_stream("<message><body>☺ é 𝄞</body></message>");
    let whole = parse_bytes(&input, Limits::default()).unwrap();
    assert_eq!(run(&input, || 1, Limits::default()).unwrap(), whole);
    let StreamEvent::Element(m) = &whole[1] else {
        panic!()
    };
    assert_eq!(m.child("body", NS_CLIENT).unwrap().text(), "☺ é 𝄞");
}

#[test]
fn several_stanzas_in_one_feed() {
    let mut p = Parser::new(Limits::default());
    p.feed(
        format!(
            "{HEADER}<presence/><message to='a@b'><body>1</body></message><iq type='get' id='1'/>"
        )
        .as_bytes(),
    );
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    let names: Vec<String> = std::iter::from_fn(|| match p.next_event().unwrap() {
        Some(StreamEvent::Element(e)) => Some(e.name.into_string()),
        _ => None,
    })
    .collect();
    assert_eq!(names, ["presence", "message", "iq"]);
    assert_eq!(p.buffered(), 0);
}

#[test]
fn rfc6120_4_6_1_whitespace_keepalives_are_skipped() {
    let mut p = Parser::new(Limits::default());
    p.feed(HEADER_NO_DECL.as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    for _ in 0..3 {
        p.feed(b" ");
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(p.buffered(), 0, "keepalive whitespace is not buffered");
    }
    p.feed(b"\r\n\t<presence/> \n");
    assert_eq!(
        p.next_event(),
        Ok(Some(StreamEvent::Element(Element::new(
            "presence", NS_CLIENT
        ))))
    );
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"  </stream:stream>  ");
    assert_eq!(p.next_event(), Ok(Some(StreamEvent::Close)));
    assert_eq!(p.next_event(), Ok(None));
}

#[test]
fn round_trip_rfc6120_9_stanzas() {
    for xml in [
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>\
         biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ==</auth>",
        "<iq id='yhc13a95' type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>balcony</resource></bind></iq>",
        "<iq id='yhc13a95' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>juliet@im.example.com/balcony</jid></bind></iq>",
        "<message from='juliet@im.example.com/balcony' id='ju2ba41c' \
         to='romeo@example.net/orchard' type='chat' xml:lang='en'>\
         <body>Art thou not Romeo, and a Montague?</body></message>",
        "<message><body>a &amp; b &lt;c&gt; ☺</body></message>",
    ] {
        assert_eq!(stanza(xml).to_xml(NS_CLIENT), xml);
    }
}

#[test]
fn written_elements_parse_back_identically() {
    let mut e = Element::new("message", NS_CLIENT)
        .with_attr("to", "a'b\"c<d>&e\tf\ng\r\nh")
        .with_child(Element::new("body", NS_CLIENT).with_text("x & <y> ]]> 'q' \"r\" \r\n\t end"))
        .with_child(Element::new("x", "").with_child(Element::new("y", "urn:y")))
        .with_child(Element::new("c", "urn:c").with_text("\n"));
    e.attrs.push(Attr {
        ns: Some("urn:p".into()),
        name: "q".into(),
        value: "1".into(),
    });
    e.attrs.push(lang("fr"));
    let xml = e.to_xml(NS_CLIENT);
    assert_eq!(stanza(&xml), e, "{xml}");
}

#[test]
fn prefixed_namespaces_are_resolved() {
    let e = stanza(
        "<foo:bar xmlns:foo='urn:x' foo:a='1' b='2'><foo:baz/><plain/>\
         <q xmlns='urn:q'><r/><foo:s xmlns:foo='urn:y'/></q><x:t xmlns:x='urn:x'/></foo:bar>",
    );
    assert!(e.is("bar", "urn:x"));
    assert_eq!(
        e.attrs,
        vec![
            Attr {
                ns: Some("urn:x".into()),
                name: "a".into(),
                value: "1".into()
            },
            Attr {
                ns: None,
                name: "b".into(),
                value: "2".into()
            },
        ]
    );
    let kids: Vec<(&str, &str)> = e
        .child_elements()
        .map(|c| (c.name.as_str(), c.ns.as_str()))
        .collect();
    // The prefix does not change the default namespace: <plain/> stays in jabber:client.
    assert_eq!(
        kids,
        [
            ("baz", "urn:x"),
            ("plain", NS_CLIENT),
            ("q", "urn:q"),
            ("t", "urn:x")
        ]
    );
    let q = e.child("q", "urn:q").unwrap();
    assert!(q.child("r", "urn:q").is_some());
    assert!(q.child("s", "urn:y").is_some(), "inner redeclaration wins");
    // Declarations are scoped: after </q>, foo is urn:x again (checked by <x:t>) and the
    // writer does not need prefixes for elements.
    assert!(e
        .to_xml(NS_CLIENT)
        .starts_with("<bar xmlns='urn:x' xmlns:ns1='urn:x' ns1:a='1' b='2'>"));
}

#[test]
fn default_namespace_can_be_undeclared() {
    let e = stanza("<message><x xmlns=''><y/></x></message>");
    let x = e.child("x", "").unwrap();
    assert!(x.child("y", "").is_some());
}

#[test]
fn custom_stream_prefix_is_resolved() {
    let events = parse_all(
        "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'><iq/></s:stream>",
    )
    .unwrap();
    assert!(matches!(&events[0], StreamEvent::Open(h) if h.name == "stream" && h.ns == NS_STREAM));
    assert_eq!(
        events[1],
        StreamEvent::Element(Element::new("iq", NS_CLIENT))
    );
    assert_eq!(events[2], StreamEvent::Close);
}

#[test]
fn xml_1_0_4_6_predefined_entities_and_char_refs_are_unescaped() {
    let e = stanza("<message b = 'x>y' c=\"it's\"\n a='&apos;&quot;&lt;&amp;&gt;&#65;'><body>a &amp; b &lt;c&gt; &#x263A;&#9786;</body></message>");
    assert_eq!(e.attr("a"), Some("'\"<&>A"));
    assert_eq!(
        e.attr("b"),
        Some("x>y"),
        "'>' may appear literally in attribute values"
    );
    assert_eq!(e.attr("c"), Some("it's"));
    assert_eq!(e.child("body", NS_CLIENT).unwrap().text(), "a & b <c> ☺☺");
}

#[test]
fn cdata_is_text_and_merges_with_neighbours() {
    let e = stanza("<body>x<![CDATA[<y> & ]] > ]]>z</body>");
    assert_eq!(e.children, vec![Node::Text("x<y> & ]] > z".into())]);
}

#[test]
fn xml_1_0_2_11_line_ends_and_3_3_3_attribute_normalization() {
    let e = stanza("<body a='x\ty\r\nz&#10;w'>1\r\n2\r3</body>");
    assert_eq!(e.attr("a"), Some("x y z\nw"));
    assert_eq!(e.text(), "1\n2\n3");
}

#[test]
fn byte_order_mark_at_start_is_accepted() {
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend_from_slice(HEADER.as_bytes());
    let events = run(&input, || 1, Limits::default()).unwrap();
    assert!(matches!(events.as_slice(), [StreamEvent::Open(_)]));
}

#[test]
fn self_closing_stream_header_opens_and_closes() {
    let events =
        parse_all("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>").unwrap();
    assert!(
        matches!(events.as_slice(), [StreamEvent::Open(h), StreamEvent::Close] if h.default_ns.is_none())
    );
}

#[test]
fn declaration_with_utf8_encoding_is_accepted() {
    let events = parse_all(&format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>{HEADER_NO_DECL}"
    ))
    .unwrap();
    assert_eq!(events.len(), 1);
}

// ---- errors ----------------------------------------------------------------------------------

#[test]
fn rfc6120_11_1_dtd_billion_laughs_is_restricted_before_it_completes() {
    let lol = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
               <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>";
    assert!(matches!(
        error_of(lol.as_bytes(), Limits::default()),
        XmlError::RestrictedXml(_)
    ));
    // Refused from `<!D`, before the internal subset arrives.
    let mut p = Parser::new(Limits::default());
    p.feed(b"<!D");
    assert!(matches!(p.next_event(), Err(XmlError::RestrictedXml(_))));
    // Inside the stream too.
    assert!(matches!(
        error_of(&in_stream("<!ENTITY x 'y'>"), Limits::default()),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        error_of(
            &in_stream("<message><!ENTITY x 'y'></message>"),
            Limits::default()
        ),
        XmlError::RestrictedXml(_)
    ));
}

#[test]
fn rfc6120_11_1_comments_are_restricted() {
    assert!(matches!(
        error_of(b"<!-- hi -->", Limits::default()),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        error_of(
            &in_stream("<message><!-- hi --></message>"),
            Limits::default()
        ),
        XmlError::RestrictedXml(_)
    ));
}

#[test]
fn rfc6120_11_1_processing_instructions_are_restricted() {
    assert!(matches!(
        error_of(b"<?foo bar?>", Limits::default()),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        error_of(b"<?xml-stylesheet href='x'?>", Limits::default()),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        error_of(
            &in_stream("<message><?php echo 1; ?></message>"),
            Limits::default()
        ),
        XmlError::RestrictedXml(_)
    ));
    // The declaration is only allowed before the header.
    assert!(matches!(
        error_of(&in_stream("<?xml version='1.0'?>"), Limits::default()),
        XmlError::RestrictedXml(_)
    ));
    assert!(matches!(
        error_of(
            b"<?xml version='1.0'?><?xml version='1.0'?>",
            Limits::default()
        ),
        XmlError::RestrictedXml(_)
    ));
}

#[test]
fn rfc6120_11_1_undefined_entities_are_restricted() {
    for xml in [
        "<body>&foo;</body>",
        "<body a='&foo;'/>",
        "<body>&nbsp;</body>",
    ] {
        assert!(
            matches!(
                error_of(&in_stream(xml), Limits::default()),
                XmlError::RestrictedXml(_)
            ),
            "{xml}"
        );
    }
    for xml in ["<body>a & b</body>", "<body>&#xZZ;</body>", "<body a='&'/>"] {
        assert!(
            matches!(
                error_of(&in_stream(xml), Limits::default()),
                XmlError::NotWellFormed(_)
            ),
            "{xml}"
        );
    }
}

#[test]
fn rfc6120_11_6_non_utf8_encoding_is_unsupported() {
    assert!(matches!(
        error_of(
            b"<?xml version='1.0' encoding='ISO-8859-1'?>",
            Limits::default()
        ),
        XmlError::UnsupportedEncoding(_)
    ));
    // "café" in ISO-8859-1.
    let mut latin1 = in_stream("<body>caf");
    latin1.extend_from_slice(b"\xe9</body>");
    assert!(matches!(
        error_of(&latin1, Limits::default()),
        XmlError::UnsupportedEncoding(_)
    ));
    let mut bad_attr = in_stream("<body a='");
    bad_attr.extend_from_slice(b"\xff\xfe'/>");
    assert!(matches!(
        error_of(&bad_attr, Limits::default()),
        XmlError::UnsupportedEncoding(_)
    ));
}

#[test]
fn xml_1_0_2_2_control_characters_are_not_well_formed() {
    for xml in [
        "<body>\u{1}</body>",
        "<body>&#1;</body>",
        "<body>&#0;</body>",
        "<body a='&#x1F;'/>",
        "<body>\u{FFFE}</body>",
        "<body><![CDATA[\u{0}]]></body>",
    ] {
        assert!(
            matches!(
                error_of(&in_stream(xml), Limits::default()),
                XmlError::NotWellFormed(_)
            ),
            "{xml:?}"
        );
    }
    // Tab, line feed and carriage return are allowed characters.
    assert_eq!(stanza("<body>&#9;&#10;&#13;</body>").text(), "\t\n\r");
}

#[test]
fn mismatched_end_tags_are_not_well_formed() {
    for xml in [
        "<message><body></message>",
        "<message></body>",
        "<a:x xmlns:a='u' xmlns:b='u'></b:x>",
        "</stream:foo>",
        "</message>",
    ] {
        assert!(
            matches!(
                error_of(&in_stream(xml), Limits::default()),
                XmlError::NotWellFormed(_)
            ),
            "{xml}"
        );
    }
    assert!(matches!(
        error_of(b"</stream:stream>", Limits::default()),
        XmlError::NotWellFormed(_)
    ));
}

#[test]
fn malformed_markup_is_not_well_formed() {
    for xml in [
        "<message to=a/>",
        "<message to='a' to='b'/>",
        "<message a:x='1' b:x='2' xmlns:a='urn:q' xmlns:b='urn:q'/>",
        "<message xmlns:a='1' xmlns:a='2'/>",
        "<1message/>",
        "<message a='<'/>",
        "<mess age/>",
        "<message a='1'b='2'/>",
        "<message a='1' 'b'/>",
        "<message a/>",
        "<message><foo:bar/></message>",
        "<message foo:x='1'/>",
        "<message xmlns:foo=''/>",
        "<message xmlns:xml='urn:not-xml'/>",
        "<message xmlns:xmlns='urn:x'/>",
        "<body>]]></body>",
        "<![CDATA[x]]>",
        "hello",
        "<!x>",
    ] {
        assert!(
            matches!(
                error_of(&in_stream(xml), Limits::default()),
                XmlError::NotWellFormed(_)
            ),
            "{xml}"
        );
    }
}

#[test]
fn rfc6120_4_9_3_10_wrong_stream_namespace_is_invalid_namespace() {
    for xml in [
        "<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>",
        "<stream xmlns='jabber:client'>",
        "<stream:stream xmlns='jabber:client'>",
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
        "<message xmlns='jabber:client'/>",
    ] {
        assert!(
            matches!(
                error_of(xml.as_bytes(), Limits::default()),
                XmlError::InvalidNamespace(_)
            ),
            "{xml}"
        );
    }
}

#[test]
fn data_before_header_or_after_close_is_not_well_formed() {
    assert!(matches!(
        error_of(b"hello", Limits::default()),
        XmlError::NotWellFormed(_)
    ));
    let mut after = in_stream("</stream:stream>\n ");
    assert_eq!(
        parse_bytes(&after, Limits::default()).unwrap().last(),
        Some(&StreamEvent::Close)
    );
    after.extend_from_slice(b"<message/>");
    assert!(matches!(
        error_of(&after, Limits::default()),
        XmlError::NotWellFormed(_)
    ));
    let mut text_after = in_stream("</stream:stream>");
    text_after.extend_from_slice(b"x");
    assert!(matches!(
        error_of(&text_after, Limits::default()),
        XmlError::NotWellFormed(_)
    ));
}

fn small(max_stanza_bytes: usize, max_depth: usize, max_attributes: usize) -> Limits {
    Limits {
        max_stanza_bytes,
        max_depth,
        max_attributes,
    }
}

#[test]
fn rfc6120_13_12_oversize_stanza_is_a_policy_violation() {
    // (The limit also bounds the stream header, which is about 130 bytes here.)
    let limits = small(200, 8, 8);
    let ok = format!("<message><body>{}</body></message>", "a".repeat(200 - 32));
    assert_eq!(ok.len(), 200);
    assert_eq!(
        parse_bytes(&in_stream(&ok), limits).unwrap().len(),
        2,
        "exactly at the limit is fine"
    );
    assert_eq!(run(&in_stream(&ok), || 1, limits).unwrap().len(), 2);
    let big = format!("<message><body>{}</body></message>", "a".repeat(200 - 31));
    assert!(matches!(
        error_of(&in_stream(&big), limits),
        XmlError::PolicyViolation(_)
    ));
    // Many small children add up.
    let many = format!("<message>{}</message>", "<a/>".repeat(50));
    assert!(matches!(
        error_of(&in_stream(&many), limits),
        XmlError::PolicyViolation(_)
    ));
    // The limit is per stanza: many stanzas at the limit are fine.
    let stream = in_stream(&ok.repeat(50));
    assert_eq!(parse_bytes(&stream, limits).unwrap().len(), 51);
}

#[test]
fn unterminated_text_or_attribute_cannot_grow_the_buffer() {
    let limits = small(1000, 8, 8);
    for prefix in [
        "<message><body>",
        "<message to='",
        "<message",
        "<message><![CDATA[",
        "<message><body>&amp",
    ] {
        let mut p = Parser::new(limits);
        p.feed(HEADER_NO_DECL.as_bytes());
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
        p.feed(prefix.as_bytes());
        let mut fed = prefix.len();
        let err = loop {
            match p.next_event() {
                Ok(None) => {}
                Ok(Some(ev)) => panic!("{prefix}: unexpected {ev:?}"),
                Err(e) => break e,
            }
            assert!(
                fed <= 1001,
                "{prefix}: buffered {fed} bytes without an error"
            );
            p.feed(b"a");
            fed += 1;
        };
        assert!(
            matches!(err, XmlError::PolicyViolation(_)),
            "{prefix}: {err}"
        );
    }
    // The header is bounded too.
    let mut header = b"<stream:stream to='".to_vec();
    header.extend(std::iter::repeat_n(b'a', 2000));
    assert!(matches!(
        error_of(&header, limits),
        XmlError::PolicyViolation(_)
    ));
}

#[test]
fn deep_nesting_is_a_policy_violation() {
    let limits = small(10_000, 3, 8);
    let ok = stanza_with_depth(3);
    assert_eq!(parse_bytes(&in_stream(&ok), limits).unwrap().len(), 2);
    assert!(matches!(
        error_of(&in_stream(&stanza_with_depth(4)), limits),
        XmlError::PolicyViolation(_)
    ));
    // Refused at the opening tag, without waiting for the rest.
    let mut p = Parser::new(limits);
    p.feed(&in_stream("<a><a><a><a>"));
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert!(matches!(p.next_event(), Err(XmlError::PolicyViolation(_))));
}

fn stanza_with_depth(depth: usize) -> String {
    format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth))
}

#[test]
fn too_many_attributes_is_a_policy_violation() {
    let limits = small(10_000, 8, 4);
    assert_eq!(
        parse_bytes(&in_stream("<m a='1' b='2' c='3' d='4'/>"), limits)
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        error_of(&in_stream("<m a='1' b='2' c='3' d='4' e='5'/>"), limits),
        XmlError::PolicyViolation(_)
    ));
    // The header is limited as well.
    assert!(matches!(
        error_of(b"<stream:stream a='1' b='2' c='3' d='4' xmlns:stream='http://etherx.jabber.org/streams'>", limits),
        XmlError::PolicyViolation(_)
    ));
}

#[test]
fn errors_poison_the_parser() {
    // A token that fails when processed (the end tag is consumed): without poisoning, the
    // parser would carry on with <presence/> as a child of <message>.
    let mut p = Parser::new(Limits::default());
    p.feed(HEADER_NO_DECL.as_bytes());
    p.feed(b"<message></body>");
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    let err = p.next_event().unwrap_err();
    assert!(matches!(err, XmlError::NotWellFormed(_)));
    p.feed(b"</message><presence/>");
    assert_eq!(p.next_event(), Err(err.clone()));
    assert_eq!(p.next_event(), Err(err.clone()));
    p.reset();
    p.feed(HEADER_NO_DECL.as_bytes());
    assert_eq!(p.next_event(), Err(err), "a failed stream is not restarted");
    // And a failure found while scanning.
    let mut p = Parser::new(Limits::default());
    p.feed(b"<!-- x -->");
    let err = p.next_event().unwrap_err();
    assert!(matches!(err, XmlError::RestrictedXml(_)));
    p.feed(HEADER_NO_DECL.as_bytes());
    assert_eq!(p.next_event(), Err(err));
}

#[test]
fn rfc6120_4_3_3_reset_keeps_pipelined_bytes() {
    let mut p = Parser::new(Limits::default());
    // The client pipelines the restart header (with a declaration) and a stanza after <auth/>.
    p.feed(format!("{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>{HEADER}<iq type='set' id='b'/>").as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    let Ok(Some(StreamEvent::Element(auth))) = p.next_event() else {
        panic!()
    };
    assert_eq!(auth.attr("mechanism"), Some("PLAIN"));
    assert!(p.buffered() > 0);
    p.reset();
    assert!(
        matches!(p.next_event(), Ok(Some(StreamEvent::Open(h))) if h.default_ns.as_deref() == Some(NS_CLIENT))
    );
    let Ok(Some(StreamEvent::Element(iq))) = p.next_event() else {
        panic!()
    };
    assert!(iq.is("iq", NS_CLIENT));
    assert_eq!(p.next_event(), Ok(None));
}

#[test]
fn reset_mid_token_rescans_the_kept_bytes() {
    let mut p = Parser::new(Limits::default());
    p.feed(HEADER_NO_DECL.as_bytes());
    p.feed(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><stream:str");
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
    assert_eq!(p.next_event(), Ok(None));
    p.reset();
    p.feed(&HEADER_NO_DECL.as_bytes()["<stream:str".len()..]);
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
}

#[test]
fn byte_at_a_time_large_stanza_is_linear() {
    // 200 KB fed one byte at a time: a quadratic rescan would take minutes.
    let body = "x".repeat(200_000);
    let input = in_stream(&format!(
        "<message a='{body}'><body>{body}</body></message>"
    ));
    let mut p = Parser::new(small(1 << 20, 8, 8));
    let mut got = 0;
    for b in &input {
        p.feed(std::slice::from_ref(b));
        while let Some(ev) = p.next_event().unwrap() {
            got += 1;
            if let StreamEvent::Element(e) = ev {
                assert_eq!(e.text().len(), 0);
                assert_eq!(
                    e.child_elements().next().map(|c| c.text().len()),
                    Some(200_000)
                );
            }
        }
    }
    assert_eq!(got, 2);
    assert_eq!(p.buffered(), 0);
}
