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


# ---- lwip_stream: TCP sessions as packet streams (see lwip_stream_fuzz.cpp) -------------


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).to_bytes(2, "big")


def ipv4(src, dst, payload, proto=6, ident=1, frag=0x4000):
    """frag: the flags and offset field (default: don't fragment)."""
    header = bytearray(h("45 00") + (20 + len(payload)).to_bytes(2, "big")
                       + ident.to_bytes(2, "big") + frag.to_bytes(2, "big")
                       + bytes([64, proto]) + b"\0\0" + bytes(src) + bytes(dst))
    header[10:12] = checksum(bytes(header))
    return bytes(header) + payload


def ipv6(src, dst, payload, next_header=6):
    return (h("60 00 00 00") + len(payload).to_bytes(2, "big") + bytes([next_header, 64])
            + bytes(src) + bytes(dst) + payload)


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SYN_OPTIONS = h("02 04 05 b4") + h("01 03 03 07") + h("04 02 01 01")  # MSS 1460, wscale 7, SACK ok


class Session:
    """One TCP connection seen from the application's side: builds its packets."""

    def __init__(self, client, server, sport, dport, isn=1000, server_isn=0):
        self.client, self.server = client, server
        self.sport, self.dport = sport, dport
        self.seq = isn           # the application's next sequence number
        self.ack = server_isn + 1  # what it acknowledges of lwIP's (after the SYN-ACK)

    def v6(self):
        return len(self.client) == 16

    def segment(self, flags, payload=b"", seq=None, ack=None, window=65535, options=b""):
        seq = self.seq if seq is None else seq
        ack = (self.ack if ack is None else ack) if flags & ACK else 0
        offset = (20 + len(options)) // 4
        tcp = bytearray(self.sport.to_bytes(2, "big") + self.dport.to_bytes(2, "big")
                        + (seq & 0xFFFFFFFF).to_bytes(4, "big") + (ack & 0xFFFFFFFF).to_bytes(4, "big")
                        + bytes([offset << 4, flags]) + window.to_bytes(2, "big") + b"\0\0\0\0"
                        + options + payload)
        pseudo = bytes(self.client) + bytes(self.server)
        pseudo += (len(tcp).to_bytes(4, "big") + h("00 00 00 06") if self.v6()
                   else h("00 06") + len(tcp).to_bytes(2, "big"))
        tcp[16:18] = checksum(pseudo + bytes(tcp))
        if self.v6():
            return ipv6(self.client, self.server, bytes(tcp))
        return ipv4(self.client, self.server, bytes(tcp))

    def syn(self):
        packet = self.segment(SYN, options=SYN_OPTIONS)
        self.seq += 1
        return packet

    def send(self, payload, flags=ACK | PSH, **kwargs):
        packet = self.segment(flags, payload, **kwargs)
        self.seq += len(payload) + (1 if flags & FIN else 0)
        return packet

    def acknowledge(self, count=0, **kwargs):
        """An ACK for `count` more bytes (or the FIN) of lwIP's."""
        self.ack += count
        return self.segment(ACK, **kwargs)


def record(packet, ms=0, keep_checksums=False):
    length = len(packet) | (0x8000 if keep_checksums else 0)
    return length.to_bytes(2, "big") + packet + ms.to_bytes(2, "big")


def stream(header, *records):
    return bytes(header) + b"".join(records)


V4_APP, V4_SERVER = [10, 0, 0, 2], [93, 184, 216, 34]
V6_APP = list(bytes.fromhex("fd000000000000000000000000000002"))
V6_SERVER = list(bytes.fromhex("20010db8000000000000000000000080"))
ECHO, SLOW, GREETING, CLOSE_ON_FIN, ABORT_ON_DATA, SHUTDOWN_FIRST, KEEPALIVE, REFUSE = (
    1 << n for n in range(8))


def echo_close(client, server, isn_index=0, server_isn=0):
    s = Session(client, server, 40000, 80, server_isn=server_isn)
    return stream([isn_index, ECHO | CLOSE_ON_FIN, 0, 0],
                  record(s.syn(), 10), record(s.acknowledge(), 10),
                  record(s.send(b"hello"), 10), record(s.acknowledge(5), 10),
                  record(s.send(b"", ACK | FIN), 10), record(s.acknowledge(1), 3000))


def lwip_seeds():
    seeds = {
        "v4_echo_close": echo_close(V4_APP, V4_SERVER),
        "v6_echo_close": echo_close(V6_APP, V6_SERVER),
    }

    # lwIP's sequence numbers wrap within its 3000-byte greeting (ISN 0xFFFFFC00).
    s = Session(V4_APP, V4_SERVER, 40013, 80, server_isn=0xFFFFFC00)
    seeds["v4_sequence_wraps"] = stream(
        [2, GREETING | ECHO | CLOSE_ON_FIN, 0, 0], record(s.syn(), 1), record(s.acknowledge(), 1),
        record(s.acknowledge(1460), 1), record(s.send(b"ping"), 1), record(s.acknowledge(1544), 1),
        record(s.send(b"", ACK | FIN), 1), record(s.acknowledge(1), 1000))

    # Segments 2 and 3 before 1: the out-of-order queue, SACK blocks in lwIP's ACKs, then
    # the hole filled; a slow reader opens its window on its poll timer.
    s = Session(V4_APP, V4_SERVER, 40001, 443)
    syn = s.syn()
    base = s.seq
    parts = [bytes([65 + i]) * 100 for i in range(4)]
    seeds["v4_out_of_order_sack"] = stream(
        [0, SLOW | ECHO, 0, 0], record(syn, 5), record(s.acknowledge(), 5),
        record(s.segment(ACK | PSH, parts[1], seq=base + 100), 5),
        record(s.segment(ACK | PSH, parts[3], seq=base + 300), 5),
        record(s.segment(ACK | PSH, parts[2], seq=base + 200), 5),
        record(s.segment(ACK | PSH, parts[0], seq=base), 1500),
        record(s.segment(ACK, seq=base + 400, ack=s.ack + 400), 2000))

    # The peer resets an open connection.
    s = Session(V6_APP, V6_SERVER, 40002, 22)
    seeds["v6_reset"] = stream(
        [0, ECHO, 0, 0], record(s.syn(), 1), record(s.acknowledge(), 1),
        record(s.send(b"SSH-2.0-x\r\n"), 1), record(s.segment(RST | ACK), 100))

    # A zero window while lwIP has 3000 bytes to send: persist timer and window probes,
    # then the window opens and everything is acknowledged.
    s = Session(V4_APP, V4_SERVER, 40003, 8080)
    syn = s.syn()
    seeds["v4_zero_window_probe"] = stream(
        [0, GREETING | CLOSE_ON_FIN, 0, 0], record(syn, 1),
        record(s.acknowledge(window=0), 10000), record(s.acknowledge(window=0), 5000),
        record(s.acknowledge(window=65535), 100), record(s.acknowledge(3000), 100),
        record(s.send(b"", ACK | FIN), 100), record(s.acknowledge(1), 100))

    # Nothing acknowledged: lwIP retransmits the greeting with backoff, then gives up on RST.
    s = Session(V6_APP, V6_SERVER, 40004, 80)
    seeds["v6_retransmit_then_reset"] = stream(
        [0, GREETING, 0, 0], record(s.syn(), 1), record(s.acknowledge(), 30000),
        record(s.acknowledge(1460), 30000), record(s.segment(RST | ACK), 10))

    # lwIP closes first (FIN after the first data), the application answers: TIME_WAIT,
    # then the same addresses and ports connect again.
    s = Session(V4_APP, V4_SERVER, 40005, 25)
    first = [record(s.syn(), 1), record(s.acknowledge(), 1), record(s.send(b"EHLO x\r\n"), 10),
             record(s.acknowledge(1), 10), record(s.send(b"", ACK | FIN), 500)]
    again = Session(V4_APP, V4_SERVER, 40005, 25, isn=900000)
    seeds["v4_time_wait_then_reuse"] = stream(
        [0, SHUTDOWN_FIRST, ECHO | CLOSE_ON_FIN, 0], *first, record(again.syn(), 10),
        record(again.acknowledge(), 10), record(again.send(b"QUIT\r\n"), 10),
        record(again.acknowledge(6), 3000))

    # An idle connection with keepalive: probes, unanswered, end it.
    s = Session(V6_APP, V6_SERVER, 40006, 993)
    seeds["v6_keepalive_idle"] = stream(
        [0, KEEPALIVE, 0, 0], record(s.syn(), 1), record(s.acknowledge(), 3000),
        record(s.acknowledge(seq=s.seq - 1), 10000))

    # The SYN in two IPv4 fragments (lwIP reassembles), and a lone fragment that times out.
    s = Session(V4_APP, V4_SERVER, 40007, 80)
    whole = s.syn()
    transport = whole[20:]
    # lwIP wants the fixed TCP header whole in the first fragment (so does any real sender).
    first_part = ipv4(V4_APP, V4_SERVER, transport[:24], ident=77, frag=0x2000)
    second_part = ipv4(V4_APP, V4_SERVER, transport[24:], ident=77, frag=3)
    lone = ipv4(V4_APP, V4_SERVER, transport[:24], ident=78, frag=0x2000)
    seeds["v4_fragmented_syn"] = stream(
        [0, ECHO | CLOSE_ON_FIN, 0, 0], record(first_part, 1), record(second_part, 1),
        record(s.acknowledge(), 1), record(s.send(b"x"), 1), record(lone, 20000))

    # Checksums kept as written: a corrupted SYN is dropped, the correct one accepted.
    s = Session(V4_APP, V4_SERVER, 40008, 80)
    good = s.syn()
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    seeds["v4_bad_checksum_kept"] = stream(
        [0, ECHO, 0, 0], record(bad, 1, keep_checksums=True), record(good, 1, keep_checksums=True),
        record(s.acknowledge(), 1, keep_checksums=True))

    # The application refuses (the glue aborts), then aborts a connection at its first data.
    s = Session(V4_APP, V4_SERVER, 40009, 80)
    t = Session(V6_APP, V6_SERVER, 40010, 80)
    seeds["refused_and_aborted"] = stream(
        [0, REFUSE, ABORT_ON_DATA, 0], record(s.syn(), 1), record(s.acknowledge(), 1),
        record(t.syn(), 1), record(t.acknowledge(), 1), record(t.send(b"data"), 1000))

    # Two interleaved flows, one per family, both echoing until both ends close.
    a = Session(V4_APP, V4_SERVER, 40011, 80)
    b = Session(V6_APP, V6_SERVER, 40012, 80)
    seeds["two_flows_interleaved"] = stream(
        [0, ECHO, ECHO | CLOSE_ON_FIN, 0], record(a.syn(), 1), record(b.syn(), 1),
        record(a.acknowledge(), 1), record(b.acknowledge(), 1),
        record(a.send(b"a" * 1000), 1), record(b.send(b"b" * 1400), 1),
        record(a.acknowledge(1000), 1), record(b.acknowledge(1400), 1),
        record(b.send(b"", ACK | FIN), 1), record(a.send(b"", ACK | FIN), 1),
        record(b.acknowledge(1), 4000), record(a.acknowledge(1), 4000))

    # IPv6 beyond the fixed header: the SYN in two fragments, then segments behind a
    # hop-by-hop and a destination options header (lwIP walks both).
    s = Session(V6_APP, V6_SERVER, 40014, 443)
    transport = s.syn()[40:]

    def fragment(offset, more, part):
        header = bytes([6, 0]) + (offset << 3 | more).to_bytes(2, "big") + h("00 00 12 34")
        return ipv6(V6_APP, V6_SERVER, header + part, next_header=44)

    def behind_options(packet):
        hop_by_hop = bytes([60, 0]) + h("01 04 00 00 00 00")  # PadN, then destination options
        destination = bytes([6, 0]) + h("01 04 00 00 00 00")
        return ipv6(V6_APP, V6_SERVER, hop_by_hop + destination + packet[40:], next_header=0)

    seeds["v6_fragments_and_extension_headers"] = stream(
        [0, ECHO | CLOSE_ON_FIN, 0, 0], record(fragment(0, 1, transport[:24]), 1),
        record(fragment(3, 0, transport[24:]), 1), record(behind_options(s.acknowledge()), 1),
        record(behind_options(s.send(b"abc")), 1), record(s.acknowledge(3), 1),
        record(s.send(b"", ACK | FIN), 1), record(s.acknowledge(1), 100))

    # IPv4 with header options (record route): lwIP skips them.
    s = Session(V4_APP, V4_SERVER, 40015, 80)

    def with_options(packet):
        options = h("07 07 04 00 00 00 00 00")  # record route with one empty slot, then EOL
        header = bytearray(bytes([0x47, 0]) + (len(packet) + 8).to_bytes(2, "big") + packet[4:10]
                           + b"\0\0" + packet[12:20])
        header[10:12] = checksum(bytes(header) + options)
        return bytes(header) + options + packet[20:]

    seeds["v4_header_options"] = stream(
        [1, ECHO | CLOSE_ON_FIN, 0, 0], record(with_options(s.syn()), 1),
        record(with_options(s.acknowledge(0, ack=0x7FFFFF01)), 1),
        record(with_options(s.send(b"opt", ack=0x7FFFFF01)), 1))

    # Reproducer of lwIP patch 0005: one byte exactly 2^31 from rcv_nxt was taken as the
    # next in-order byte (an assertion with LWIP_DEBUG).
    s = Session(V4_APP, V4_SERVER, 41001, 80)
    seeds["crash_one_byte_half_space_away"] = stream(
        [0, ECHO, 0, 0], record(s.syn(), 1), record(s.acknowledge(), 1),
        record(s.segment(ACK | PSH, b"X", seq=s.seq + 2**31), 1), record(s.send(b"hi"), 1),
        record(s.acknowledge(2), 1000))
    return seeds


SEEDS["lwip_stream"] = lwip_seeds()

for target, seeds in SEEDS.items():
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed_name, data in seeds.items():
        (folder / seed_name).write_bytes(data)
