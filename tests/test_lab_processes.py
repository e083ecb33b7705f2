"""lab/processes.py: a process is busy while any of its threads runs, not only its main thread."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from lab import processes

pytestmark = pytest.mark.skipif(not processes.CAN_SEE_PROCESSES, reason="needs /proc")

# The main thread sleeps in join(); a second thread spins until stdin closes.
SPINNER = """
import sys, threading
def spin():
    while not done:
        pass
done = False
t = threading.Thread(target=spin)
t.start()
print("spinning", flush=True)
sys.stdin.read()
done = True
t.join()
"""


def test_a_process_whose_second_thread_runs_is_busy():
    process = subprocess.Popen([sys.executable, "-c", SPINNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "spinning\n"
        # The spinning thread is running, or runnable, at every look, while the main thread is blocked reading.
        assert all(processes.busy([process.pid]) == [process.pid] for _ in range(20))
    finally:
        process.stdin.close()
        process.wait(timeout=5)
    assert processes.busy([process.pid]) == []


def test_a_process_blocked_in_every_thread_is_at_rest():
    process = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 3
        while processes.busy([process.pid]):  # it may still be on its way into read()
            assert time.monotonic() < deadline
    finally:
        process.stdin.close()
        process.wait(timeout=5)
