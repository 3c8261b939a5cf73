"""Drives `sluice shell` interactively through a pseudo-terminal, as a person would:
a multi-line statement, Tab completion of a stream's name, a push query stopped with
Ctrl-C (the shell must stay up), a history file, and Ctrl-D to leave. Usage: interactive_shell.py SLUICE_BIN SERVER_URL HISTORY
Exits non-zero with a message when something is off."""

import os
import pty
import select
import sys
import time


def main():
    binary, url, history = sys.argv[1:4]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(binary, [binary, "shell", "--server", url, "--history-file", history])
    out = bytearray()

    def read_until(needle, timeout=20.0, count=1):
        deadline = time.time() + timeout
        while out.count(needle.encode()) < count:
            left = deadline - time.time()
            if left <= 0:
                raise SystemExit(f"timed out waiting for {needle!r}; screen so far:\n{out.decode(errors='replace')}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out.extend(chunk)
        return out.decode(errors="replace")

    def send(text):
        os.write(fd, text.encode())

    read_until("sluice>")
    # A statement split over two lines: the continuation prompt, then the result.
    send("CREATE STREAM pty_s (k STRING KEY, v INT)\r")
    read_until("     >")
    send("  WITH (kafka_topic='pty_s', value_format='JSON');\r")
    read_until("Stream created")
    # Wait for each prompt before typing: the line editor discards type-ahead.
    read_until("sluice>", count=2)
    # Tab completes the new stream's name (fetched after the CREATE) in the case typed.
    send("INSERT INTO pty_\t")
    # The completed line is redrawn with its prompt, so later prompt counts are one higher.
    read_until("INSERT INTO pty_s")
    send(" (k, v) VALUES ('a', 1);\r")
    read_until("sluice>", count=4)
    send("SET 'auto.offset.reset'='earliest';\r")
    read_until("sluice>", count=5)
    send("SELECT * FROM pty_s EMIT CHANGES;\r")
    read_until("|a")
    send("\x03")  # Ctrl-C stops the push query, not the shell
    read_until("Query terminated")
    read_until("sluice>", count=6)
    send("SHOW STREAMS;\r")
    read_until("PTY_S")
    read_until("sluice>", count=7)
    send("\x04")  # Ctrl-D leaves
    deadline = time.time() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, 9)
            raise SystemExit(f"shell did not exit on Ctrl-D; screen:\n{out.decode(errors='replace')}")
        # Keep draining the terminal so the shell never blocks writing to it.
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out.extend(os.read(fd, 4096))
            except OSError:
                pass
    if os.WEXITSTATUS(status) != 0:
        raise SystemExit(f"shell exited with {os.WEXITSTATUS(status)}")
    with open(history, encoding="utf-8") as h:
        saved = h.read()
    if "SHOW STREAMS;" not in saved:
        raise SystemExit(f"history file lacks the statements:\n{saved}")
    print("interactive shell OK")


if __name__ == "__main__":
    main()
