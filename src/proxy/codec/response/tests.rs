use super::*;

fn parse(raw: &[u8], ctx: ResponseCtx) -> Result<(ResponseInfo, String), RespError> {
    let mut out = Vec::new();
    match parse_response(raw, 65536, ctx, &mut out)? {
        RespParse::Complete(i) => Ok((i, String::from_utf8(out).unwrap())),
        RespParse::Partial => panic!("partial"),
    }
}

fn ctx() -> ResponseCtx {
    ResponseCtx::default()
}

#[test]
fn content_length_response_is_reusable() {
    let (i, out) = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi",
        ctx(),
    )
    .unwrap();
    assert_eq!(i.body, BodyKind::Length(2));
    assert!(i.upstream_reusable && !i.close_client);
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 2\r\n\r\n"
    );
}

#[test]
fn chunked_response_is_rechunked() {
    let (i, out) = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n",
        ctx(),
    )
    .unwrap();
    assert_eq!(i.body, BodyKind::Chunked);
    assert_eq!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

#[test]
fn trailer_field_is_not_forwarded() {
    let (_, out) = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
        ctx(),
    )
    .unwrap();
    assert_eq!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

#[test]
fn chunked_to_http10_client_closes() {
    let c = ResponseCtx {
        client_http10: true,
        ..ctx()
    };
    let (i, out) = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", c).unwrap();
    assert!(i.close_client);
    assert!(!out.contains("Transfer-Encoding"));
    assert!(out.contains("Connection: close"));
}

#[test]
fn no_length_means_close_delimited() {
    let (i, out) = parse(b"HTTP/1.1 200 OK\r\n\r\n", ctx()).unwrap();
    assert_eq!(i.body, BodyKind::CloseDelimited);
    assert!(i.close_client && !i.upstream_reusable);
    assert!(out.contains("Connection: close\r\n"));
}

#[test]
fn head_response_has_no_body() {
    let c = ResponseCtx {
        request_is_head: true,
        ..ctx()
    };
    let (i, out) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", c).unwrap();
    assert_eq!(i.body, BodyKind::None);
    assert!(i.upstream_reusable);
    assert!(out.contains("Content-Length: 100\r\n"));
}

#[test]
fn status_204_and_304_have_no_body() {
    for raw in [
        &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    ] {
        let (i, _) = parse(raw, ctx()).unwrap();
        assert_eq!(i.body, BodyKind::None);
        assert!(!i.close_client);
    }
}

#[test]
fn interim_100_is_forwarded_bare() {
    let (i, out) = parse(b"HTTP/1.1 100 Continue\r\n\r\n", ctx()).unwrap();
    assert!(i.interim);
    assert_eq!(out, "HTTP/1.1 100 Continue\r\n\r\n");
    let c = ResponseCtx {
        client_http10: true,
        ..ctx()
    };
    let (i, out) = parse(b"HTTP/1.1 100 Continue\r\n\r\n", c).unwrap();
    assert!(i.interim && out.is_empty());
}

#[test]
fn switching_protocols_keeps_handshake_headers() {
    let c = ResponseCtx {
        upgrade_requested: true,
        ..ctx()
    };
    let (i, out) = parse(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nFRAME",
        c,
    )
    .unwrap();
    assert!(i.switching);
    assert_eq!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    );
}

#[test]
fn unrequested_101_is_an_error() {
    assert!(parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", ctx()).is_err());
}

#[test]
fn refused_upgrade_closes_client_after() {
    let c = ResponseCtx {
        upgrade_requested: true,
        ..ctx()
    };
    let (i, _) = parse(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", c).unwrap();
    assert!(i.close_client && !i.switching);
}

#[test]
fn conflicting_response_lengths_are_rejected() {
    assert!(
        parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ctx()
        )
        .is_err()
    );
}

#[test]
fn te_and_cl_response_uses_chunked_and_is_not_reused() {
    let (i, out) = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(),
    )
    .unwrap();
    assert_eq!(i.body, BodyKind::Chunked);
    assert!(!i.upstream_reusable);
    assert!(!out.contains("Content-Length"));
}

#[test]
fn upstream_connection_close_is_not_forwarded_but_respected() {
    let (i, out) = parse(
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
        ctx(),
    )
    .unwrap();
    assert!(!i.upstream_reusable && !i.close_client);
    assert!(!out.contains("X-Hop") && !out.contains("Connection"));
}

#[test]
fn set_cookie_repeats_are_kept() {
    let (_, out) = parse(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
        ctx(),
    )
    .unwrap();
    assert!(out.contains("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"));
}

#[test]
fn http10_upstream_is_not_reused() {
    let (i, _) = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", ctx()).unwrap();
    assert!(!i.upstream_reusable);
}

#[test]
fn bytes_after_101_reach_tunnel() {
    let c = ResponseCtx {
        upgrade_requested: true,
        ..ctx()
    };
    let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
    let mut out = Vec::new();
    let RespParse::Complete(i) = parse_response(raw, 65536, c, &mut out).unwrap() else {
        panic!("partial");
    };
    // the frame after the head is left for the tunnel
    assert_eq!(&raw[i.head_len..], b"\x81\x02hi");
}
