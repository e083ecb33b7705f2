"""A client that never finishes, with a child in a session of its own that never would either.

The capture must stop both: a build may not leave processes behind.
"""

import subprocess
import sys
import time

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print(f"child {child.pid}", flush=True)
time.sleep(600)
