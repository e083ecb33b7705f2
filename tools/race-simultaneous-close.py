"""How often do two FINs cross when both ends shut down at the same instant?

The simultaneous-close page makes the FINs cross on purpose (a closed window
holds each FIN back).  This tool asks the other question: with nothing held
back, both ends of a loopback connection call ``shutdown(SHUT_WR)`` at once,
each in a process of its own pinned to a CPU of its own, released together
by a flag in shared memory that both spin on.  Did the FINs cross?

The outcome is read from what each end is left in.  When each end sent its
FIN before it received the other's, both pass through CLOSING and both end
in TIME_WAIT.  When one FIN arrived first, its receiver went to CLOSE_WAIT
and then LAST_ACK, and only the other end is left in TIME_WAIT.

    python tools/race-simultaneous-close.py            # 80 runs
    python tools/race-simultaneous-close.py --runs 200

It prints one line: how many of the runs crossed.  The count is the machine's
(its CPUs, its load); it runs outside the lab, on the machine's own loopback.
"""

from __future__ import annotations

import argparse
import mmap
import os
import socket
import time

TCP_TIME_WAIT = "06"  # the state's number in /proc/net/tcp (include/net/tcp_states.h)


def time_wait_ports() -> set[tuple[int, int]]:
    """(local port, remote port) of every TIME_WAIT entry on the machine's IPv4 loopback."""
    pairs = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == TCP_TIME_WAIT:
                local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
                pairs.add((local, remote))
    return pairs


def shut_down_on_signal(sock: socket.socket, flag: mmap.mmap, cpu: int) -> None:
    """In a child: wait for the flag, shut down for writing, read to end of file, close."""
    if cpu < os.cpu_count():
        os.sched_setaffinity(0, {cpu})
    flag[1 + cpu] = 1  # ready
    while flag[0] == 0:  # spin: waking from a blocking call would take longer than the race
        pass
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):
        pass
    sock.close()
    os._exit(0)


def one_race(listener: socket.socket) -> bool:
    """One connection, both ends shut down at once: True if the FINs crossed."""
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    ports = (client.getsockname()[1], server.getsockname()[1])
    flag = mmap.mmap(-1, 3)
    children = []
    for cpu, sock in enumerate((client, server)):
        pid = os.fork()
        if pid == 0:
            shut_down_on_signal(sock, flag, cpu)
        children.append(pid)
    client.close()  # the children hold the connection now
    server.close()
    while not (flag[1] and flag[2]):
        time.sleep(0.001)
    flag[0] = 1
    for pid in children:
        os.waitpid(pid, 0)
    # Both children have read the other's FIN; wait for the last ACKs to land.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        waiting = time_wait_ports()
        client_waits = (ports[0], ports[1]) in waiting
        server_waits = (ports[1], ports[0]) in waiting
        if client_waits and server_waits:
            return True
        if client_waits or server_waits:
            time.sleep(0.01)  # the other end may still be on its way to TIME_WAIT
            waiting = time_wait_ports()
            return (ports[0], ports[1]) in waiting and (ports[1], ports[0]) in waiting
        time.sleep(0.001)
    raise RuntimeError(f"neither end of {ports} reached TIME_WAIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=80, help="how many races (default: %(default)s)")
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0))
    crossed = sum(one_race(listener) for _ in range(args.runs))
    print(f"{crossed} of {args.runs} runs crossed (both ends in TIME_WAIT) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
