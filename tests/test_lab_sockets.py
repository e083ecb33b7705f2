"""lab/sockets.py: reading the TCP table from recorded text and from the live kernel."""

from __future__ import annotations

import socket
import sys
import time

from lab.sockets import (
    Endpoint,
    TcpSocket,
    parse_bsd_netstat,
    parse_proc_net_tcp,
    read_table,
)

# Recorded by hand in the layout of Linux /proc/net/tcp (x86, little-endian: the
# address words are printed in host byte order, so 127.0.0.1 reads 0100007F).
# Port 0xC358 is 50008, the note's port; 0xD2F0 is 54000.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:C358 00000000:0000 0A 00000000:00000002 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C358 0100007F:D2F0 08 00000000:0000000D 00:00000000 00000000  1000        0 41240 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2F0 0100007F:C358 05 00000000:00000000 00:00000000 00000000  1000        0 0 3 0000000000000000 20 4 1 10 -1
   3: 0100007F:D2F2 0100007F:C358 01 0000001A:00000000 01:00000014 00000000  1000        0 41250 1 0000000000000000 20 4 31 10 -1
   4: 0100007F:D2F4 0100007F:C358 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
"""

# /proc/net/tcp6: ::1 is 00000000 00000000 00000000 01000000 (the last word
# byte-reversed); ::ffff:127.0.0.1 (an IPv4 peer of a dual-stack socket) is
# 00000000 00000000 FFFF0000 0100007F.
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:C358 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51234 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:C358 00000000000000000000000001000000:E5A0 01 00000000:0000000C 00:00000000 00000000  1000        0 51240 1 0000000000000000 20 4 30 10 -1
   2: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:A410 08 00000000:00000001 00:00000000 00000000  1000        0 51250 1 0000000000000000 20 4 30 10 -1
   3: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51251 1 0000000000000000 100 0 0 10 0
"""

# `netstat -an -p tcp` on macOS.
BSD_NETSTAT = """\
Active Internet connections (including servers)
Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)
tcp4      13      0  127.0.0.1.50008        127.0.0.1.53488        CLOSE_WAIT
tcp4       0      0  127.0.0.1.53488        127.0.0.1.50008        FIN_WAIT_2
tcp4       0     12  127.0.0.1.53490        127.0.0.1.50008        FIN_WAIT_1
tcp4       0      0  127.0.0.1.53492        127.0.0.1.50008        SYN_RCVD
tcp4       0      0  127.0.0.1.50008        *.*                    LISTEN
tcp6       0      0  ::1.8080               *.*                    LISTEN
tcp46      0      0  *.5000                 *.*                    LISTEN
udp4       0      0  *.5353                 *.*
tcp4       0      0  localhost.631          localhost.60000        TIME_WAIT
"""

assert sys.byteorder == "little", "the recorded samples above are from a little-endian machine"


def test_proc_net_tcp_ipv4():
    rows = parse_proc_net_tcp(PROC_NET_TCP)
    assert rows == [
        # LISTEN: Recv-Q is the accept queue (two connections not yet accepted).
        TcpSocket(Endpoint("127.0.0.1", 50008), Endpoint("0.0.0.0", 0), "LISTEN", 2, 0),
        # 12 unread bytes and the unread FIN: 13.
        TcpSocket(Endpoint("127.0.0.1", 50008), Endpoint("127.0.0.1", 54000), "CLOSE_WAIT", 13, 0),
        TcpSocket(Endpoint("127.0.0.1", 54000), Endpoint("127.0.0.1", 50008), "FIN_WAIT2", 0, 0),
        # "01:00000014": a retransmit timer, not the socket's end: no expiry.
        TcpSocket(Endpoint("127.0.0.1", 54002), Endpoint("127.0.0.1", 50008), "ESTABLISHED", 0, 26),
        # "03:00001770": the TIME_WAIT timer, 0x1770 = 6000 ticks of 1/100 s: 60 s left.
        TcpSocket(Endpoint("127.0.0.1", 54004), Endpoint("127.0.0.1", 50008), "TIME_WAIT", 0, 0, expires=60),
    ]
    assert [row.expires for row in rows[:4]] == [None] * 4
    assert str(rows[0].local) == "127.0.0.1:50008"
    assert str(rows[0].remote) == "0.0.0.0:*"


def test_proc_net_tcp6_loopback_and_ipv4_mapped():
    rows = parse_proc_net_tcp(PROC_NET_TCP6)
    assert [(str(r.local), str(r.remote), r.state, r.recv_q, r.send_q) for r in rows] == [
        ("[::1]:50008", "[::]:*", "LISTEN", 0, 0),
        ("[::1]:50008", "[::1]:58784", "ESTABLISHED", 12, 0),
        # A dual-stack socket with an IPv4 peer shows as plain IPv4, as netstat prints it.
        ("127.0.0.1:8080", "127.0.0.1:42000", "CLOSE_WAIT", 1, 0),
        ("[::]:8080", "[::]:*", "LISTEN", 0, 0),
    ]
    assert rows[1].local == Endpoint("::1", 50008)


def test_proc_net_tcp_ignores_header_and_blank_lines_and_names_unknown_states():
    text = PROC_NET_TCP.splitlines()[0] + "\n\n   0: 0100007F:C358 00000000:0000 0D 00000000:00000000 00:0 0 0 0 0\n"
    [row] = parse_proc_net_tcp(text)
    assert row.state == "UNKNOWN(0D)"
    assert parse_proc_net_tcp(PROC_NET_TCP.splitlines()[0]) == []


def test_bsd_netstat():
    rows = parse_bsd_netstat(BSD_NETSTAT)
    assert [(str(r.local), str(r.remote), r.state, r.recv_q, r.send_q) for r in rows] == [
        ("127.0.0.1:50008", "127.0.0.1:53488", "CLOSE_WAIT", 13, 0),
        ("127.0.0.1:53488", "127.0.0.1:50008", "FIN_WAIT2", 0, 0),  # BSD spells it FIN_WAIT_2
        ("127.0.0.1:53490", "127.0.0.1:50008", "FIN_WAIT1", 0, 12),
        ("127.0.0.1:53492", "127.0.0.1:50008", "SYN_RECV", 0, 0),
        ("127.0.0.1:50008", "0.0.0.0:*", "LISTEN", 0, 0),
        ("[::1]:8080", "0.0.0.0:*", "LISTEN", 0, 0),
        ("0.0.0.0:5000", "0.0.0.0:*", "LISTEN", 0, 0),
        ("127.0.0.1:631", "127.0.0.1:60000", "TIME_WAIT", 0, 0),
    ]


def _poll_table(view, condition, what: str, timeout: float = 3.0):
    """Re-read the live table until ``condition(view(rows))`` holds; return that view.

    A bounded poll over the condition itself, never a sleep.
    """
    end = time.monotonic() + timeout
    while True:
        reading = read_table()
        result = view(reading.sockets)
        if condition(result):
            return result
        assert time.monotonic() < end, f"within {timeout} s the table never showed {what}; last reading:\n" + "\n".join(
            map(str, reading.sockets)
        )


def test_read_table_live_pair():
    reading = read_table()
    assert reading.available and reading.source == "netlink sock_diag (what ss reads)"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        client_port = client.getsockname()[1]
        try:
            def by_role(rows):
                listening = [r for r in rows if r.local.port == port and r.state == "LISTEN"]
                server = [r for r in rows if r.local.port == port and r.remote.port == client_port]
                client_rows = [r for r in rows if r.local.port == client_port and r.remote.port == port]
                return listening, server, client_rows

            # Not accepted yet: the connection waits in the listener's accept queue (Recv-Q 1).
            listening, server, client_rows = _poll_table(
                by_role,
                lambda found: found[1] and found[1][0].state == "ESTABLISHED" and found[0] and found[0][0].recv_q == 1,
                "the server end established and waiting in the accept queue",
            )
            assert listening == [TcpSocket(Endpoint("127.0.0.1", port), Endpoint("0.0.0.0", 0), "LISTEN", 1, 0)]
            conn, _ = listener.accept()
            with conn:
                client.sendall(b"Hello, world")
                # Sent, not read: the 12 bytes wait in the server end's receive queue.
                listening, server, client_rows = _poll_table(
                    by_role,
                    lambda found: found[1] and found[1][0].recv_q == 12 and found[2] and found[2][0].send_q == 0,
                    "Recv-Q 12 at the server end, and the client's bytes acknowledged",
                )
                assert listening[0].recv_q == 0  # accepted now
                assert server == [
                    TcpSocket(Endpoint("127.0.0.1", port), Endpoint("127.0.0.1", client_port), "ESTABLISHED", 12, 0)
                ]
                assert client_rows == [
                    TcpSocket(Endpoint("127.0.0.1", client_port), Endpoint("127.0.0.1", port), "ESTABLISHED", 0, 0)
                ]

                client.close()
                # The client's FIN is one more unread "byte": 13, in CLOSE_WAIT; the client waits in FIN_WAIT2.
                listening, server, client_rows = _poll_table(
                    by_role,
                    lambda found: found[1]
                    and found[1][0].state == "CLOSE_WAIT"
                    and [r.state for r in found[2]] == ["FIN_WAIT2"],
                    "CLOSE_WAIT at the server end and FIN_WAIT2 at the client's (its FIN acknowledged)",
                )
                assert (server[0].state, server[0].recv_q, server[0].send_q) == ("CLOSE_WAIT", 13, 0)
                assert [(r.state, r.recv_q) for r in client_rows] == [("FIN_WAIT2", 0)]

                assert conn.recv(1024) == b"Hello, world"
                assert conn.recv(1024) == b""
                _, server, _ = _poll_table(
                    by_role,
                    lambda found: found[1] and found[1][0].recv_q == 0,
                    "the server end's queue read empty",
                )
                assert server[0].state == "CLOSE_WAIT"
        finally:
            client.close()
