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

for target, seeds in SEEDS.items():
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed_name, data in seeds.items():
        (folder / seed_name).write_bytes(data)
