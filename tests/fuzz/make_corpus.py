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
}

for target, seeds in SEEDS.items():
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed_name, data in seeds.items():
        (folder / seed_name).write_bytes(data)
