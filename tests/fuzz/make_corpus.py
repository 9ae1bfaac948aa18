#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target: a few valid messages, as bytes.

Run from anywhere: python3 tests/fuzz/make_corpus.py. The files are committed; rerun this
only to change the seeds.
"""
import pathlib

HERE = pathlib.Path(__file__).resolve().parent


def h(text):
    return bytes.fromhex(text)


def name(text):
    raw = text.encode()
    return bytes([len(raw)]) + raw


def qname(text):
    return b"".join(name(label) for label in text.split(".")) + b"\0"


def dns_query(qid, flags, questions, qd=None, an=0, ar=0):
    count = len(questions) if qd is None else qd
    header = qid.to_bytes(2, "big") + flags.to_bytes(2, "big")
    for n in (count, an, 0, ar):
        header += n.to_bytes(2, "big")
    return header + b"".join(questions)


SEEDS = {
    "socks4": {
        # The seed document's example: CONNECT for user "Fred" to 66.102.7.99:80.
        "request_fred_connect": h("04 01 00 50 42 66 07 63") + b"Fred\0",
        "request_socks4a_bind": h("04 02 00 15 00 00 00 01") + b"\0ftp.example\0",
        "response_granted": h("00 5a 12 34 0a 0b 0c 0d"),
        "response_rejected": h("00 5b 00 00 00 00 00 00"),
    },
    "socks5_server": {
        "greeting_no_auth": h("05 01 00"),
        "handshake_user_pass_domain": h("05 02 00 02")
        + h("01") + name("Fred") + name("secret")
        + h("05 01 00 03") + name("example.com") + h("01 bb"),
        "handshake_connect_ipv4": h("05 01 00") + h("05 01 00 01 01 02 03 04 00 50"),
        "request_udp_associate_ipv6": h("05 03 00 04 20 01 0d b8") + bytes(11) + h("01 00 35"),
        "user_pass_empty_password": h("01") + name("Fred") + h("00"),
    },
    "socks5_client": {
        "selection_no_auth_reply_ipv4": h("05 00") + h("05 00 00 01 0a 00 00 01 04 38"),
        "selection_user_pass_status_reply_domain": h("05 02") + h("01 00")
        + h("05 00 00 03") + name("proxy.example") + h("9c 40"),
        "reply_ipv6_refused": h("05 05 00 04") + bytes(15) + h("01 00 00"),
        "selection_no_acceptable": h("05 ff"),
    },
    "udp": {
        "ipv4_dns_query": h("00 00 00 01 0a 00 00 01 00 35") + b"query",
        "domain_payload": h("00 00 00 03") + name("example.com") + h("00 35 ab cd"),
        "ipv6_empty_payload": h("00 00 00 04 20 01 0d b8") + bytes(11) + h("01 00 35"),
        "fragment_1": h("00 00 01 01 01 02 03 04 00 50 ff"),
    },
    # fake-ip mode's DNS parser (src/tunnel/dns.cpp): one UDP payload to port 53 each.
    "dns": {
        "query_a": dns_query(0x1234, 0x0100, [qname("www.example.com") + h("0001 0001")]),
        "query_aaaa_upper_case": dns_query(0x0001, 0x0100, [qname("WWW.Example.COM") + h("001c 0001")]),
        "query_txt_with_edns": dns_query(0xbeef, 0x0120, [qname("txt.zone.test") + h("0010 0001")], ar=1)
        + h("00 0029 1000 00000000 0000"),
        "query_root": dns_query(0x0002, 0x0000, [h("00") + h("0002 0001")]),
        "query_longest_name": dns_query(7, 0x0100, [qname(".".join(["a" * 63] * 3 + ["b" * 61])) + h("0001 0001")]),
        "query_label_64": dns_query(8, 0x0100, [qname("a" * 64 + ".test") + h("0001 0001")]),
        "query_two_questions": dns_query(9, 0x0100, [qname("a.test") + h("0001 0001"),
                                                     qname("b.test") + h("001c 0001")]),
        "query_opcode_status": dns_query(10, 0x1000, [qname("a.test") + h("0001 0001")]),
        "query_compressed_name": dns_query(11, 0x0100, [h("03") + b"www" + h("c0 0c") + h("0001 0001")]),
        "query_pointer_loop": dns_query(12, 0x0100, [h("c0 0c") + h("0001 0001")]),
        "query_pointer_forward": dns_query(13, 0x0100, [h("c0 12") + h("0001 0001") + h("01") + b"x" + h("00")]),
        "query_truncated_name": dns_query(14, 0x0100, [h("0a") + b"www"]),
        "query_truncated_type": dns_query(15, 0x0100, [qname("a.test") + h("00")]),
        "query_bad_character": dns_query(16, 0x0100, [qname("a b.test") + h("0001 0001")]),
        "header_only": dns_query(17, 0x0100, [], qd=1),
        "answer_compressed": dns_query(0x1234, 0x8180, [qname("www.example.com") + h("0001 0001")], an=1)
        + h("c00c 0001 0001 0000012c 0004 5db8d822"),
        "answer_cname_chain": dns_query(0x4321, 0x8180, [qname("a.example.com") + h("0001 0001")], an=2)
        + h("c00c 0005 0001 0000003c 0004") + h("01") + b"b" + h("c00e")
        + h("c02b 0001 0001 0000003c 0004 01020304"),
        "short": h("1234 0100 00"),
    },
}

# The state-machine targets read two bytes of options and chunking first (see each target's
# header comment), then the bytes of one side of a handshake.
SOCKS5_OK_IPV4 = h("05 00 00 01 0a 00 00 01 04 38")


def reply_with_domain(length, code="00"):
    return h(f"05 {code} 00 03") + bytes([length]) + b"r" * length + h("04 38")


SEEDS["server_handshake"] = {
    "socks5_connect_ipv4_pipelined": h("00 07") + h("05 01 00")
    + h("05 01 00 01 01 02 03 04 00 50") + b"GET / HTTP/1.1\r\n",
    "socks5_user_pass_accepted_domain": h("03 05") + h("05 02 00 02") + h("01") + name("Fred")
    + name("secret") + h("05 01 00 03") + name("example.com") + h("01 bb"),
    "socks5_user_pass_rejected": h("01 02") + h("05 01 02") + h("01") + name("Fred") + name("x"),
    "socks5_udp_associate_ipv6": h("00 0b") + h("05 01 00") + h("05 03 00 04") + bytes(15)
    + h("01 00 35"),
    "socks5_bind": h("00 0c") + h("05 01 00") + h("05 02 00 01 0a 00 00 02 00 15"),
    "socks5_no_acceptable_method": h("00 04") + h("05 01 01"),
    "socks4_connect_user_id": h("00 03") + h("04 01 00 50 42 66 07 63") + b"Fred\0" + b"data",
    "socks4a_connect": h("00 09") + h("04 01 01 bb 00 00 00 01") + b"\0example.com\0",
    "socks4_where_users_are_required": h("01 0d") + h("04 01 00 50 7f 00 00 01") + b"\0",
    "not_socks": h("00 01") + b"GET / HTTP/1.1\r\n\r\n",
}
SEEDS["client_handshake"] = {
    "socks5_reply_then_payload": h("00 05") + h("05 00") + SOCKS5_OK_IPV4 + b"SSH-2.0-x\r\n",
    "socks5_user_pass_domain_255_then_payload": h("02 06") + h("05 02") + h("01 00")
    + reply_with_domain(255) + b"payload",
    "socks5_domain_1": h("00 07") + h("05 00") + reply_with_domain(1),
    "socks5_domain_63_name_destination": h("10 08") + h("05 00") + reply_with_domain(63),
    "socks5_domain_0": h("00 0e") + h("05 00") + reply_with_domain(0),
    "socks5_refused_pipelined": h("04 0d") + h("05 00") + reply_with_domain(7, "05"),
    "socks5_udp_associate_ipv6": h("08 0b") + h("05 00") + h("05 00 00 04") + bytes(15)
    + h("01 13 88"),
    "socks5_no_acceptable": h("00 0c") + h("05 ff"),
    "socks5_auth_failed": h("02 0f") + h("05 02") + h("01 01"),
    "socks4_granted_then_payload": h("01 09") + h("00 5a 00 00 00 00 00 00") + b"hello",
    "socks4_rejected": h("01 0a") + h("00 5b 00 00 00 00 00 00"),
}
SEEDS["socksd_config"] = {
    "example": (HERE.parent.parent / "configs" / "socksd.json").read_bytes(),
    "minimal": b'{"listen": ["127.0.0.1:1080"]}',
    "open_private_limits": b'{"listen": ["0.0.0.0:1080", "[::]:1080"], "allow_open": true, '
    b'"allow_private": true, "log_level": "debug", "enable_bind": true, '
    b'"limits": {"max_connections": 5, "handshake_timeout_s": 1}}',
    "rules": b'{"listen": ["127.0.0.1:1080"], "users": [{"name": "a", "password": "b"}], '
    b'"rules": [{"action": "allow", "users": ["a"], "clients": ["10.0.0.0/8"], '
    b'"destinations": ["::/0"], "domains": ["*.example"], "ports": [80, "1000-2000"], '
    b'"commands": ["connect", "bind", "udp_associate"]}, {"action": "deny"}]}',
    "wrong_type": b'{"listen": "127.0.0.1:1080", "limits": {"max_connections": -1}}',
    "duplicate_key": b'{"allow_open": true, "allow_open": false}',
    "not_json": b'{"listen": [',
}

for target, seeds in SEEDS.items():
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed_name, data in seeds.items():
        (folder / seed_name).write_bytes(data)
