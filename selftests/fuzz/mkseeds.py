#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write the seed corpora of selftests/fuzz (corpus/NAME/*) from the wire
format of include/netkernel/nk_proto.h: one well-formed input of each kind
a harness reads, so that fuzzing starts past the first checks.  Run it
again after a change of the wire format; the files are in the tree."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# enum nk_op, NK_F_*, roles (nk_proto.h)
OP = dict(HELLO=1, SOCKET=2, BIND=3, LISTEN=4, ACCEPT=5, CONNECT=6, SEND=7,
          SHUTDOWN=8, CLOSE=9, SETSOCKOPT=10, GETSOCKOPT=11, GETSOCKNAME=12,
          GETPEERNAME=13, IOCTL=14, CREDIT=15)
EV = dict(DATA=0x101, ACCEPT=0x102, CONNECTED=0x103, WRITABLE=0x104,
          HUP=0x105, ERROR=0x106, RESET=0x107, URG=0x108)
F_REPLY, F_ADDR, F_CREDIT, F_MORE, F_ANC = 1, 2, 4, 8, 0x10
GUEST, NSM = 0, 1


def hdr(op, flags=0, plen=0, sock=0, status=0, req_id=0, buf_alloc=0,
        fwd_cnt=0, args=(0, 0, 0, 0)):
    return struct.pack('<HHIIiQII4Q', op, flags, plen, sock, status, req_id,
                       buf_alloc, fwd_cnt, *args)


def addr4(ip, port):
    return struct.pack('<H', 2) + struct.pack('>H', port) + bytes(4) + \
        bytes(ip) + bytes(12) + bytes(4)


def addr6(ip, port, scope=0):
    return struct.pack('<H', 10) + struct.pack('>H', port) + bytes(4) + \
        bytes(ip) + struct.pack('<I', scope)


# struct nk_anc (80 bytes) and its NK_ANC_* bits
ANC_PKTINFO, ANC_TTL, ANC_TOS, ANC_ERR = 0x01, 0x02, 0x04, 0x40


def anc(present, ifindex=0, addr4=bytes(4), spec_dst=bytes(4), tos=0, ttl=0,
        ee=(0, 0, 0, 0, 0, 0), offender=bytes(28)):
    errno, origin, typ, code, info, data = ee
    return struct.pack('<BBHI', 1, 80, present, ifindex) + bytes(16) + \
        bytes(addr4) + bytes(spec_dst) + bytes([tos, 0, ttl, 0]) + \
        struct.pack('<IBBBBII', errno, origin, typ, code, 0, info, data) + offender


def msg(op, payload=b'', **kw):
    return hdr(op, plen=len(payload), **kw) + payload


def nk_msg_seed(role, m, credit=b''):
    """fuzz_nk_msg: selector, message, credit triples."""
    return bytes([role, 0x20, 0x00]) + struct.pack('>H', len(m)) + m + credit


def nk_msg_seeds():
    name = b'vm1\0'
    credit = struct.pack('<3I', 65536, 0, 1000) + \
        struct.pack('<3I', 262144, 1000, 65536)
    v6 = bytes(range(16))
    return {
        'hello-reply': nk_msg_seed(GUEST, msg(OP['HELLO'], name, flags=F_REPLY,
                                              req_id=1, args=(1, 3, 4096, 2))),
        'ev-data-addr4': nk_msg_seed(GUEST, msg(EV['DATA'], addr4([10, 0, 0, 1], 53) + b'x' * 100,
                                                flags=F_ADDR, sock=3)),
        'ev-data-credit': nk_msg_seed(GUEST, msg(EV['DATA'], b'y' * 1000, flags=F_CREDIT,
                                                 sock=3, buf_alloc=65536), credit),
        'ev-data-anc': nk_msg_seed(GUEST, msg(
            EV['DATA'], anc(ANC_PKTINFO | ANC_TTL | ANC_TOS, 2, [10, 0, 0, 2], [10, 0, 0, 2],
                            0x20, 63) + addr4([10, 0, 0, 1], 53) + b'a' * 20,
            flags=F_ADDR | F_ANC, sock=3)),
        'ev-data-errqueue': nk_msg_seed(GUEST, msg(
            EV['DATA'], anc(ANC_ERR, ee=(111, 2, 3, 3, 0, 0),
                            offender=addr4([10, 0, 0, 1], 0)) +
            addr4([10, 0, 0, 1], 9) + b'u', flags=F_ADDR | F_ANC, sock=3)),
        'send-addr6': nk_msg_seed(NSM, msg(OP['SEND'], addr6(v6, 443, 2) + b'z' * 10,
                                           flags=F_ADDR, sock=7, req_id=9)),
        'connect-reply': nk_msg_seed(GUEST, msg(OP['CONNECT'], flags=F_REPLY, sock=3,
                                                status=-115, req_id=4)),
        'ev-reset': nk_msg_seed(GUEST, msg(EV['RESET'], sock=3, status=-104)),
        # E -> N: the guest's endpoint id and weight (NK_FEAT_WEIGHT) in a3
        'socket-weight': nk_msg_seed(NSM, msg(OP['SOCKET'], addr4([10, 0, 0, 11], 0),
                                              sock=7, req_id=9,
                                              args=(AF_INET, SOCK_STREAM, 0,
                                                    3 << 16 | 2 << 32))),
        'ev-urg': nk_msg_seed(GUEST, msg(EV['URG'], sock=3, fwd_cnt=1000,
                                         args=(ord('c'), 1002, 0, 0))),
    }


# fuzz_engine: endpoints and action kinds (fuzz_engine.c)
VM1, VM2, NSM0, NSM1 = 0, 1, 2, 3
AF_INET, SOCK_STREAM, SOCK_DGRAM = 2, 1, 2


def mp_byte(mp):
    return (mp - 2048) // 256


def submit(ep, m, nseg=1, honest=True, length=None):
    n = len(m) if length is None else length
    flags = (nseg - 1) | (4 if honest else 0)
    return bytes([ep | flags << 4]) + struct.pack('>H', n) + m


def post(ep, size, n=1):
    if size > 64:
        return bytes([ep | 1 << 2 | (n - 1) << 4]) + struct.pack('>H', size - 65)
    return bytes([ep | 1 << 2 | (n - 1 | 8) << 4]) + struct.pack('>H', size - 1)


def run(passes=1):
    return bytes([2 << 2 | (passes - 1) << 4])


def reconnect(ep):
    return bytes([ep | 3 << 2])


def engine_seeds():
    """The engine's first request id is 1 and its first NSM socket id 1."""
    sock = submit(VM1, hdr(OP['SOCKET'], sock=1, req_id=2, buf_alloc=65536,
                           flags=F_CREDIT, args=(AF_INET, SOCK_STREAM, 0, 0)))
    sock_reply = submit(NSM0, hdr(OP['SOCKET'], flags=F_REPLY | F_CREDIT, sock=1,
                                  req_id=1, buf_alloc=65536))
    opened = post(VM1, 64 + 65536, 4) + post(NSM0, 64 + 65536, 4) + sock + run() + \
        sock_reply + run()
    conn = submit(VM1, msg(OP['CONNECT'], addr4([10, 0, 0, 1], 80), sock=1, req_id=3))
    send = submit(VM1, msg(OP['SEND'], b'GET / HTTP/1.0\r\n\r\n', sock=1, req_id=0),
                  nseg=2)
    data = submit(NSM0, msg(EV['DATA'], b'HTTP/1.0 200 OK\r\n\r\n' + b'x' * 3000,
                            sock=1), nseg=3)
    close = submit(VM1, hdr(OP['CLOSE'], sock=1, req_id=4))
    mp = bytes([mp_byte(65536)] * 4)
    return {
        'socket': mp + opened,
        'connect-send-recv-close': mp + opened + conn + run() +
        submit(NSM0, hdr(OP['CONNECT'], flags=F_REPLY, sock=1, req_id=2)) + run() +
        send + data + run(2) + close + run(),
        'dgram': mp + post(VM1, 64 + 65536, 4) + post(NSM0, 64 + 65536, 4) +
        submit(VM1, hdr(OP['SOCKET'], sock=5, req_id=2, args=(AF_INET, SOCK_DGRAM, 0, 0)))
        + run() + submit(NSM0, hdr(OP['SOCKET'], flags=F_REPLY, sock=1, req_id=1)) + run() +
        submit(VM1, msg(OP['SEND'], addr4([10, 0, 0, 1], 53) + b'q' * 40, flags=F_ADDR,
                        sock=5)) + run(),
        'dgram-anc': mp + post(VM1, 64 + 65536, 4) + post(NSM0, 64 + 65536, 4) +
        submit(VM1, hdr(OP['SOCKET'], sock=5, req_id=2, args=(AF_INET, SOCK_DGRAM, 0, 0)))
        + run() + submit(NSM0, hdr(OP['SOCKET'], flags=F_REPLY | F_CREDIT, sock=1, req_id=1,
                                   buf_alloc=65536)) + run() +
        submit(VM1, hdr(OP['CREDIT'], flags=F_CREDIT, sock=5, buf_alloc=65536)) + run() +
        submit(NSM0, msg(EV['DATA'], anc(ANC_ERR, ee=(111, 2, 3, 3, 0, 0),
                                         offender=addr4([10, 0, 0, 1], 0)) +
                         addr4([10, 0, 0, 1], 9) + b'u', flags=F_ADDR | F_ANC, sock=1)) +
        submit(NSM0, msg(EV['DATA'], anc(ANC_TTL, ttl=64) + addr4([10, 0, 0, 1], 9) +
                         b'v' * 10, flags=F_ADDR | F_ANC, sock=1)) + run(2),
        # A guest whose payload limit is larger than its NSM's.
        'bind-larger-than-nsm': bytes([mp_byte(8192), 0, mp_byte(2048), 0]) +
        post(VM1, 64 + 8192, 4) + post(NSM0, 64 + 2048, 4) + sock + run() + sock_reply +
        run() + submit(VM1, hdr(OP['BIND'], sock=1, req_id=3), length=64 + 8192) + run(),
        # An NSM whose payload limit is larger than its guest's.
        'reply-larger-than-guest': bytes([mp_byte(2048), 0, mp_byte(8192), 0]) +
        post(VM1, 64 + 2048, 4) + post(NSM0, 64 + 8192, 4) + sock + run() + sock_reply +
        run() + submit(VM1, hdr(OP['GETSOCKOPT'], sock=1, req_id=3, args=(1, 7, 4, 0))) +
        run() + submit(NSM0, hdr(OP['GETSOCKOPT'], flags=F_REPLY, sock=1, req_id=2),
                       length=64 + 8192) + run(),
        'urgent-data': mp + opened + conn + run() +
        submit(NSM0, hdr(OP['CONNECT'], flags=F_REPLY, sock=1, req_id=2)) + run() +
        submit(NSM0, msg(EV['DATA'], b'ab', sock=1)) +
        submit(NSM0, hdr(EV['URG'], sock=1, args=(ord('c'), 2, 0, 0))) +
        submit(NSM0, msg(EV['DATA'], b'cde', sock=1)) + run(3),
        'reconnect-nsm': mp + opened + reconnect(NSM0) + run() + post(VM1, 4096, 2) + run(),
    }


def ctl_seeds():
    """fuzz_ctl: request lines as nkctl writes them."""
    return {
        'list': b'{"cmd": "list"}\n',
        'stats': b'{"cmd": "stats"}\n{"cmd": "stats", "endpoint": "vm1"}\n',
        'sockets': b'{"cmd": "sockets", "endpoint": "nsm0"}\n',
        'ss': b'{"cmd": "ss"}\n',
        'ss_filters': b'{"cmd": "ss", "guest": "vm1", "nsm": "nsm0", "state": "estab", "port": 80}\n',
        'ss_bad': b'{"cmd": "ss", "state": "nope", "port": 70000}\n',
        'kill': b'{"cmd": "kill", "guest": "vm1", "sock": 7}\n',
        'engine': b'{"cmd": "engine"}\n',
        'attach-detach': b'{"cmd": "detach", "guest": "vm2"}\n'
                         b'{"cmd": "attach", "guest": "vm2", "nsm": "nsm0"}\n'
                         b'{"cmd": "attach", "guest": "vm1", "nsm": "vm2"}\n',
        'malformed': b'{"cmd": 7}\n[1, 2]\n{"cmd": "list"\n\n',
        'add-remove': b'{"cmd": "add", "role": "guest", "name": "vm5", '
                      b'"socket": "/tmp/he_fuzz_vm5.sock", "nsm": "nsm0", "weight": "3", '
                      b'"address": "10.0.0.15", "address6": "fd00::15", "queue_pairs": "2"}\n'
                      b'{"cmd": "add", "role": "nsm", "name": "nsm5", '
                      b'"socket": "/tmp/he_fuzz_nsm5.sock", "carriers": "2"}\n'
                      b'{"cmd": "attach", "guest": "vm5", "nsm": "nsm5"}\n'
                      b'{"cmd": "list"}\n{"cmd": "remove", "name": "nsm5"}\n'
                      b'{"cmd": "remove", "name": "vm5"}\n{"cmd": "remove", "name": "vm5"}\n',
        'add-bad': b'{"cmd": "add", "role": "guest", "name": "vm1"}\n'
                   b'{"cmd": "add", "role": "guest", "name": "vm6", "nsm": "vm1"}\n'
                   b'{"cmd": "add", "role": "guest", "name": "vm6", "weight": "0"}\n'
                   b'{"cmd": "add", "role": "nsm", "name": "n6", "nsm": "nsm0"}\n'
                   b'{"cmd": "add", "role": "x", "name": "a/b", "weight": true}\n',
        'add-limits': b'{"cmd": "add", "role": "guest", "name": "vm7", '
                      b'"socket": "/tmp/he_fuzz_vm7.sock", "nsm": "nsm0", "max_sockets": "8", '
                      b'"max_pending": 65536, "max_conn_rate": "5", "conn_burst": "10"}\n'
                      b'{"cmd": "list"}\n{"cmd": "stats", "endpoint": "vm7"}\n'
                      b'{"cmd": "remove", "name": "vm7"}\n'
                      b'{"cmd": "add", "role": "guest", "name": "vm7", "max_sockets": "0"}\n'
                      b'{"cmd": "add", "role": "guest", "name": "vm7", "max_pending": "4095"}\n'
                      b'{"cmd": "add", "role": "guest", "name": "vm7", "max_conn_rate": "-1"}\n'
                      b'{"cmd": "add", "role": "nsm", "name": "n7", "conn_burst": "1"}\n',
        'set': b'{"cmd": "set", "name": "vm2", "weight": "5", "max_sockets": 2, '
               b'"max_pending": "65536", "max_conn_rate": "3", "conn_burst": "4", '
               b'"address": "10.0.0.22", "address6": "fd00::22"}\n'
               b'{"cmd": "list"}\n'
               b'{"cmd": "set", "name": "vm2", "weight": "0"}\n'
               b'{"cmd": "set", "name": "vm2", "nsm": "nsm0"}\n'
               b'{"cmd": "set", "name": "vm2", "socket": "x", "queue_pairs": "2"}\n'
               b'{"cmd": "set", "name": "nsm0", "weight": "2"}\n'
               b'{"cmd": "set", "name": "vm2", "weight": [1]}\n'
               b'{"cmd": "set", "name": "vm2"}\n{"cmd": "set"}\n',
    }


def write(name, seeds):
    d = os.path.join(HERE, 'corpus', name)
    os.makedirs(d, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(d, k), 'wb') as f:
            f.write(v)


def main():
    write('fuzz_nk_msg', nk_msg_seeds())
    write('fuzz_engine', engine_seeds())
    write('fuzz_ctl', ctl_seeds())
    return 0


if __name__ == '__main__':
    sys.exit(main())
