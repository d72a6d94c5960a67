use super::*;
use crate::proxy::error::ErrorKind;
use std::net::Ipv4Addr;

fn fwd(trusted: bool) -> Forwarding<'static> {
    Forwarding {
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        trusted,
        default_host: "127.0.0.1:8182",
        underscores_in_headers: false,
        request_id: b"00000000000000aa",
    }
}

fn parse(raw: &[u8]) -> Result<(RequestInfo, String), HeadError> {
    parse_with(raw, true)
}

fn parse_with(raw: &[u8], trusted: bool) -> Result<(RequestInfo, String), HeadError> {
    let mut out = Vec::new();
    match parse_request(raw, 65536, &fwd(trusted), &mut out)? {
        HeadParse::Complete(info) => Ok((info, String::from_utf8(out).unwrap())),
        HeadParse::Partial => panic!("partial"),
    }
}

fn bad(raw: &[u8]) -> bool {
    matches!(parse(raw), Err(HeadError::Bad(_)))
}

#[test]
fn simple_get_is_reserialized() {
    let (info, out) = parse(b"GET /a?b=1 HTTP/1.1\r\nHost: x:8080\r\nAccept: */*\r\n\r\n").unwrap();
    assert_eq!(info.body, BodyKind::None);
    assert!(info.keep_alive && info.idempotent && !info.http10);
    assert_eq!(
        out,
        "GET /a?b=1 HTTP/1.1\r\nHost: x:8080\r\nAccept: */*\r\nX-Forwarded-For: 127.0.0.1\r\n\
         X-Forwarded-Proto: http\r\nX-Forwarded-Host: x:8080\r\nX-Forwarded-Port: 8080\r\n\
         X-Request-ID: 00000000000000aa\r\n\r\n"
    );
}

#[test]
fn partial_head_waits() {
    let mut out = Vec::new();
    let r = parse_request(
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        65536,
        &fwd(true),
        &mut out,
    );
    assert_eq!(r, Ok(HeadParse::Partial));
    assert!(out.is_empty());
}

#[test]
fn oversized_head_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 70000));
    let mut out = Vec::new();
    assert_eq!(
        parse_request(&raw, 65536, &fwd(true), &mut out),
        Err(HeadError::TooLarge)
    );
}

#[test]
fn too_many_headers_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..300 {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_eq!(parse(&raw).unwrap_err(), HeadError::TooLarge);
}

#[test]
fn te_and_cl_is_rejected() {
    assert!(bad(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    ));
}

#[test]
fn differing_duplicate_cl_is_rejected() {
    assert!(bad(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    ));
    assert!(bad(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"
    ));
}

#[test]
fn identical_duplicate_cl_is_collapsed() {
    let (info, out) =
        parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
    assert_eq!(info.body, BodyKind::Length(5));
    assert_eq!(out.matches("Content-Length").count(), 1);
}

#[test]
fn te_not_ending_in_chunked_is_rejected() {
    assert!(bad(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"
    ));
    assert!(bad(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
    ));
    assert!(bad(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"));
    assert!(bad(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, \r\n\r\n"
    ));
    assert!(bad(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"
    ));
}

#[test]
fn te_coding_before_chunked_is_not_implemented() {
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: GZIP ,Chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let e = parse(raw).unwrap_err();
        assert!(matches!(e, HeadError::NotImplemented(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::NotImplemented);
    }
}

#[test]
fn upstream_sees_only_transfer_encoding_chunked() {
    let (info, out) =
        parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n").unwrap();
    assert_eq!(info.body, BodyKind::Chunked);
    assert_eq!(out.matches("Transfer-Encoding").count(), 1);
    assert!(out.contains("\r\nTransfer-Encoding: chunked\r\n"));
}

#[test]
fn trailer_field_is_not_forwarded() {
    let (_, out) = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    assert!(!out.contains("Trailer"), "{out}");
}

#[test]
fn bad_first_chunk_is_refused_with_the_head() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for body in [
        &b"ffffffffffffffff\r\n"[..],
        b"10000000000000000\r\n",
        b"zz\r\n",
        b"5\r\nhelloXX",
    ] {
        let raw = [&head[..], body].concat();
        assert!(bad(&raw), "{body:?}");
    }
    // A body still on its way is not judged yet.
    let raw = [&head[..], b"7fffffffffffffff\r\nab"].concat();
    assert!(parse(&raw).is_ok());
}

#[test]
fn te_in_http10_is_rejected() {
    assert!(bad(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
    ));
}

#[test]
fn obs_fold_is_rejected() {
    assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"));
}

#[test]
fn bare_lf_in_head_is_rejected() {
    assert!(bad(b"GET / HTTP/1.1\nHost: a\n\n"));
    assert!(bad(b"GET / HTTP/1.1\r\nHost: a\n\r\n"));
}

#[test]
fn bare_cr_in_head_is_rejected() {
    assert!(parse(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n").is_err());
}

#[test]
fn host_must_appear_exactly_once() {
    assert!(bad(b"GET / HTTP/1.1\r\n\r\n"));
    assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
    assert!(bad(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"));
}

#[test]
fn http10_without_host_gets_default_host() {
    let (info, out) = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(info.http10 && !info.keep_alive);
    assert!(out.contains("Host: 127.0.0.1:8182\r\n"));
    assert!(out.starts_with("GET / HTTP/1.1\r\n"));
}

#[test]
fn http10_keep_alive_is_honoured() {
    let (info, _) = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert!(info.keep_alive);
}

#[test]
fn connect_is_refused() {
    assert!(bad(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"));
}

#[test]
fn path_is_forwarded_byte_for_byte() {
    let (_, out) = parse(b"GET //a///b?x=1//2&y=%2F HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert!(out.starts_with("GET //a///b?x=1//2&y=%2F HTTP/1.1\r\n"));
}

#[test]
fn absolute_form_authority_replaces_host() {
    let (_, out) = parse(
        b"GET http://evil.example/x?q=1 HTTP/1.1\r\nHost: good.example\r\nAccept: */*\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        out,
        "GET /x?q=1 HTTP/1.1\r\nHost: evil.example\r\nAccept: */*\r\n\
         X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: evil.example\r\nX-Forwarded-Port: 80\r\n\
         X-Request-ID: 00000000000000aa\r\n\r\n"
    );
    let (_, out) = parse(b"GET http://h:8080 HTTP/1.0\r\n\r\n").unwrap();
    assert!(out.contains("\r\nHost: h:8080\r\n"));
    assert!(out.contains("X-Forwarded-Port: 8080\r\n"));
}

#[test]
fn absolute_form_without_path_keeps_query() {
    let (_, out) =
        parse(b"GET http://evil.example?q=1 HTTP/1.1\r\nHost: good.example\r\n\r\n").unwrap();
    assert!(out.starts_with("GET /?q=1 HTTP/1.1\r\nHost: evil.example\r\n"));
}

#[test]
fn userinfo_in_absolute_target_is_rejected() {
    assert!(bad(b"GET http://u:p@host/ HTTP/1.1\r\nHost: host\r\n\r\n"));
    assert!(bad(b"GET http:///x HTTP/1.1\r\nHost: host\r\n\r\n"));
}

#[test]
fn absolute_form_is_reduced_to_path() {
    let (_, out) =
        parse(b"GET http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n").unwrap();
    assert!(out.starts_with("GET /p?q HTTP/1.1\r\n"));
    let (_, out) = parse(b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n").unwrap();
    assert!(out.starts_with("GET / HTTP/1.1\r\n"));
}

#[test]
fn hop_by_hop_headers_are_stripped() {
    let (_, out) = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n\
          TE: trailers\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nX-Secret: s\r\nX-Keep: k\r\n\r\n",
    )
    .unwrap();
    for gone in [
        "Connection",
        "Keep-Alive",
        "TE:",
        "Proxy-Connection",
        "Upgrade",
        "X-Secret",
    ] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    assert!(out.contains("X-Keep: k\r\n"));
}

#[test]
fn connection_named_forwarding_headers_keep_ours() {
    let (_, out) = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For, X-Forwarded-Proto, Host\r\n\
          X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\r\n",
    )
    .unwrap();
    assert!(out.contains("X-Forwarded-For: 127.0.0.1\r\n"));
    assert!(out.contains("X-Forwarded-Proto: http\r\n"));
    assert!(out.contains("Host: a\r\n"));
}

#[test]
fn xff_is_appended() {
    let (_, out) = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    )
    .unwrap();
    assert!(out.contains("X-Forwarded-For: 203.0.113.9, 10.0.0.1, 127.0.0.1\r\n"));
}

#[test]
fn trusted_peer_keeps_forwarded_proto_host_port() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\
                X-Forwarded-Host: example.com\r\nX-Forwarded-Port: 443\r\n\r\n";
    let (_, out) = parse_with(raw, true).unwrap();
    assert!(out.contains("X-Forwarded-Proto: https\r\n"));
    assert!(out.contains("X-Forwarded-Host: example.com\r\n"));
    assert!(out.contains("X-Forwarded-Port: 443\r\n"));
    let (_, out) = parse_with(raw, false).unwrap();
    assert!(out.contains("X-Forwarded-Proto: http\r\n"));
    assert!(out.contains("X-Forwarded-Host: a\r\n"));
    assert!(out.contains("X-Forwarded-Port: 80\r\n"));
    assert_eq!(out.matches("X-Forwarded-Proto").count(), 1);
}

#[test]
fn ipv6_host_port_is_parsed() {
    assert_eq!(host_port(b"[::1]:8080"), Some(&b"8080"[..]));
    assert_eq!(host_port(b"[::1]"), None);
    assert_eq!(host_port(b"a:1"), Some(&b"1"[..]));
    assert_eq!(host_port(b"a:"), None);
}

#[test]
fn websocket_upgrade_is_detected_and_kept() {
    let (info, out) = parse(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: k\r\n\r\n",
    )
    .unwrap();
    assert_eq!(info.upgrade, Upgrade::WebSocket);
    assert!(out.contains("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
    assert!(out.contains("X-Forwarded-Proto: ws\r\n"));
    assert!(out.contains("Sec-WebSocket-Key: k\r\n"));
}

#[test]
fn websocket_upgrade_must_be_get() {
    assert!(bad(
        b"POST /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    ));
}

#[test]
fn non_websocket_upgrade_is_plain_request() {
    let (info, out) =
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n").unwrap();
    assert_eq!(info.upgrade, Upgrade::None);
    assert!(!out.contains("Upgrade"));
}

#[test]
fn content_length_zero_means_no_body() {
    let (info, out) = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(info.body, BodyKind::None);
    assert!(!info.idempotent);
    assert!(!out.contains("Content-Length"));
}

#[test]
fn pipelined_bytes_are_not_part_of_head() {
    let raw = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let (info, _) = parse(raw).unwrap();
    assert_eq!(&raw[info.head_len..info.head_len + 6], b"GET /2");
}

#[test]
fn invalid_targets_are_rejected() {
    assert!(bad(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(bad(b"GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
}

#[test]
fn underscore_headers_are_dropped_by_default() {
    let (_, out) = parse_with(
        b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nMy_Header: m\r\nMy-Header: d\r\n\r\n",
        false,
    )
    .unwrap();
    assert!(!out.contains('_'), "{out}");
    assert!(!out.contains("6.6.6.6"), "{out}");
    assert!(out.contains("My-Header: d\r\n"));
}

#[test]
fn kept_underscore_headers_never_shadow_controlled_ones() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\n\
                Content_Length: 5\r\nMy_Header: m\r\n\r\n";
    let mut out = Vec::new();
    let keep = Forwarding {
        underscores_in_headers: true,
        ..fwd(false)
    };
    parse_request(raw, 65536, &keep, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("My_Header: m\r\n"), "{out}");
    assert!(!out.contains("6.6.6.6"), "{out}");
    assert!(!out.contains("Content_Length"), "{out}");
}

/// A head at the field limit is accepted only if the fields the proxy adds
/// still fit: the head sent upstream must parse with the same limit.
#[test]
fn forwarding_headers_count_against_field_limit() {
    let head = |n: usize| {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..n {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw
    };
    // Host + n + the four X-Forwarded-* fields + X-Request-ID.
    let (_, out) = parse(&head(MAX_HEADERS - 6)).unwrap();
    let mut again = Vec::new();
    assert!(parse_request(out.as_bytes(), usize::MAX, &fwd(true), &mut again).is_ok());
    let mut out = Vec::new();
    let r = parse_request(&head(MAX_HEADERS - 5), 65536, &fwd(true), &mut out);
    assert_eq!(r, Err(HeadError::TooLarge));
    assert!(out.is_empty());
}

/// The field limit is only counted when the client's fields plus
/// `ADDED_FIELDS` could pass it, so no head may gain more than that.
#[test]
fn added_fields_stay_within_their_bound() {
    for raw in [
        &b"GET /ws HTTP/1.1\r\nHost: a:1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
        b"GET / HTTP/1.0\r\n\r\n",
    ] {
        let (info, out) = parse(raw).unwrap();
        let sent = field_count(&raw[..info.head_len]);
        let added = field_count(out.as_bytes()).saturating_sub(sent);
        assert!(added <= ADDED_FIELDS, "{added} fields added to {raw:?}");
    }
}

/// Fuzz regression (request_head, crash-b41f1d92): the input parsed, but
/// the head rebuilt from it had more fields than the parser accepts.
#[test]
fn fuzz_crash_b41f1d92_rebuilt_head_parses_again() {
    let data = include_bytes!("../testdata/request_head-crash-b41f1d92");
    let (&flags, raw) = data.split_first().unwrap();
    let f = Forwarding {
        peer: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        trusted: flags & 1 == 1,
        default_host: "[::1]:8182",
        underscores_in_headers: false,
        request_id: b"0000000000000001",
    };
    let max = 64 + (flags as usize >> 1) * 64;
    let mut out = Vec::new();
    if let Ok(HeadParse::Complete(info)) = parse_request(raw, max, &f, &mut out) {
        let mut again = Vec::new();
        let f2 = Forwarding { trusted: true, ..f };
        match parse_request(&out, usize::MAX, &f2, &mut again) {
            Ok(HeadParse::Complete(i2)) => assert_eq!(i2.body, info.body),
            other => panic!("our own head did not parse: {other:?}"),
        }
    }
}

#[test]
fn browser_accept_asks_for_html() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: Text/HTML,application/xhtml+xml;q=0.9\r\n\r\n";
    assert!(parse(raw).unwrap().0.accepts_html);
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n";
    assert!(!parse(raw).unwrap().0.accepts_html);
    assert!(
        !parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .0
            .accepts_html
    );
}

#[test]
fn trusted_peer_keeps_its_request_id() {
    let raw = b"GET /a?b=1 HTTP/1.1\r\nHost: a\r\nX-Request-ID: front-42\r\n\r\n";
    let (info, out) = parse_with(raw, true).unwrap();
    assert!(out.contains("\r\nX-Request-ID: front-42\r\n"), "{out}");
    assert_eq!(out.matches("X-Request-ID").count(), 1);
    let kept = info.spans.request_id.clone().unwrap();
    assert_eq!(&raw[kept], b"front-42");
    assert_eq!(&raw[info.spans.method.clone()], b"GET");
    assert_eq!(&raw[info.spans.target.clone()], b"/a?b=1");
}

#[test]
fn untrusted_peer_request_id_is_replaced() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nx-request-id: spoofed\r\n\r\n";
    let (info, out) = parse_with(raw, false).unwrap();
    assert!(
        out.contains("\r\nX-Request-ID: 00000000000000aa\r\n"),
        "{out}"
    );
    assert!(!out.contains("spoofed"), "{out}");
    assert_eq!(info.spans.request_id, None);
}

#[test]
fn invalid_request_id_from_trusted_peer_is_replaced() {
    let long = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: {}\r\n\r\n",
        "x".repeat(129)
    );
    for raw in [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: two words\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: caf\xc3\xa9\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID:\r\n\r\n".to_vec(),
        long.into_bytes(),
    ] {
        let (info, out) = parse_with(&raw, true).unwrap();
        assert!(
            out.contains("\r\nX-Request-ID: 00000000000000aa\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("X-Request-ID").count(), 1, "{out}");
        assert_eq!(info.spans.request_id, None);
    }
}

#[test]
fn request_id_named_hop_by_hop_is_not_kept() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-request-id\r\nX-Request-ID: hop\r\n\r\n";
    let (info, out) = parse_with(raw, true).unwrap();
    assert!(!out.contains("hop"), "{out}");
    assert_eq!(info.spans.request_id, None);
}
