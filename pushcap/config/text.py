"""Messages as one line of text, for every command's error output (cli.main, `status`, `reload`).

A message may quote what a user or a file gave: a file name, a config's own `error()` text, a
command-line word, a daemon's answer. Its newlines would make one error two lines (a log reader,
a monitoring check reading the last line, see it as two), and its escape sequences would drive
the terminal. Here, below every command, so that each of them prints through the same rule.
"""

from __future__ import annotations

# C0 controls and DEL as Python escapes ("\n", "\x1b"): what a message quotes must not start a
# line or drive the terminal.
_ESCAPED = {code: repr(chr(code))[1:-1] for code in (*range(32), 127)}


def one_line(message: str) -> str:
    """`message` as one line of text, its control characters escaped."""
    return message.translate(_ESCAPED)
