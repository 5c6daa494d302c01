"""Where the decision log's batches are written: in a thread of the server, or in a writer process of its own.

Both take a batch of queued decisions (`decisions.queued` tuples) and append it, ordered by time, to the
"decisions" chain in one transaction, raising when the store refused it (the log keeps the batch and tries again).

- `ThreadWriter` does the work in the calling thread: turning decisions into rows, hashing and inserting
  them (about 10 µs a decision). Simple, and what tests with an injected clock use; but that work holds
  the server's GIL, which at saturation costs a fifth of single-evaluation throughput and two thirds of
  batch throughput.
- `ProcessWriter` hands each batch, pickled (well under 1 µs a decision), through a pipe to a child
  process (`python -m charter.audit.writer`) that does the same work on another core and answers when
  the batch is committed. `charter serve` uses it.

A crash of the server closes the pipe: the child finishes the batch it holds, then exits. A batch in the
pipe when the child dies is sent again to a new child; had the dead child committed it before it could
answer, those decisions are stored twice (same request ids, later seqs), never lost.

The pipe carries pickles between a process and its own child, nothing else can write to it.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from charter.audit import store
from charter.audit.trail import AuditTrail

log = logging.getLogger("charter.audit")
_LENGTH = struct.Struct(">I")
NICENESS = 19


class WriteFailed(Exception):
    """The batch was not committed (the reason is the message); it can be written again."""


class ThreadWriter:
    def __init__(self, sessions: sessionmaker[Session], trail: AuditTrail):
        self.sessions = sessions
        self.trail = trail

    def write(self, items: list[tuple]) -> None:
        from charter.audit.decisions import rows_of

        fields = [row for item in sorted(items, key=_time_of) for row in rows_of(item)]  # the chain in time order
        trail = self.trail
        with self.sessions.begin() as session:
            store.append_fields(
                session, store.DECISIONS, fields, trail.signing_key, trail.checkpoint_every, trail.now()
            )

    def close(self, timeout: float = 30.0) -> None:
        pass


class ProcessWriter:
    """A child process that writes the batches; started on first use, restarted if it dies."""

    def __init__(self, sessions: sessionmaker[Session], trail: AuditTrail):
        bind = sessions.kw["bind"]
        # The URL (with its password) travels through the pipe, not the command line or the environment.
        self._settings = (
            bind.url.render_as_string(hide_password=False),
            str(trail.keyring.directory),
            trail.checkpoint_every,
        )
        self._child: subprocess.Popen | None = None

    def write(self, items: list[tuple]) -> None:
        child = self._running()
        try:
            _send(child.stdin, pickle.dumps(items, pickle.HIGHEST_PROTOCOL))
            answer = _receive(child.stdout)
        except (BrokenPipeError, EOFError, OSError) as error:
            self._forget(child)
            raise WriteFailed(f"the decision log writer process ended ({error or type(error).__name__})") from error
        if answer is None:
            self._forget(child)
            raise WriteFailed("the decision log writer process ended")
        problem = pickle.loads(answer)
        if problem is not None:
            raise WriteFailed(problem)

    def close(self, timeout: float = 30.0) -> None:
        """Close the pipe and wait for the child to exit (it has nothing queued: every write was answered)."""
        child, self._child = self._child, None
        if child is None:
            return
        try:
            child.stdin.close()
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("decision log writer process %d did not exit within %g s; killing it", child.pid, timeout)
            child.kill()
            child.wait()
        finally:
            child.stdout.close()

    def _running(self) -> subprocess.Popen:
        if self._child is None or self._child.poll() is not None:
            child = subprocess.Popen(
                [sys.executable, "-m", "charter.audit.writer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            try:
                _send(child.stdin, pickle.dumps(self._settings))
            except OSError:
                child.kill()
                child.wait()
                raise
            self._child = child
        return self._child

    def _forget(self, child: subprocess.Popen) -> None:
        self._child = None
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()


def _time_of(item: tuple) -> int:
    return item[2]


def _send(pipe: BinaryIO, payload: bytes) -> None:
    pipe.write(_LENGTH.pack(len(payload)))
    pipe.write(payload)
    pipe.flush()


def _receive(pipe: BinaryIO) -> bytes | None:
    """One frame; None when the other end closed the pipe between frames."""
    header = pipe.read(_LENGTH.size)
    if not header:
        return None
    if len(header) < _LENGTH.size:
        raise EOFError("the pipe closed inside a frame")
    (length,) = _LENGTH.unpack(header)
    payload = pipe.read(length)
    if len(payload) < length:
        raise EOFError("the pipe closed inside a frame")
    return payload


def main() -> None:
    """The child: read settings, then batches until the pipe closes; answer each with None or the error."""
    # Ctrl-C in a terminal signals the whole process group; the server decides when this process ends
    # (by closing the pipe, after its last batch), so a batch is never cut off by a signal meant for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Decisions first: when the machine is saturated, the writer gets what the server leaves (its queue
    # then fills, and the oldest sampled allows are dropped and counted), rather than slowing answers.
    os.nice(NICENESS)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s charter.audit.writer: %(message)s")
    from charter.audit.signing import Keyring
    from charter.store.db import make_engine, sessions

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    settings = _receive(source)
    if settings is None:
        return
    url, keyring_directory, checkpoint_every = pickle.loads(settings)
    engine = make_engine(url)
    writer = ThreadWriter(
        sessions(engine), AuditTrail(keyring=Keyring(Path(keyring_directory)), checkpoint_every=checkpoint_every)
    )
    try:
        while (frame := _receive(source)) is not None:
            try:
                writer.write(pickle.loads(frame))
                problem = None
            except Exception as error:  # reported to the server, which keeps the batch and tries again
                problem = f"{type(error).__name__}: {error}"
            _send(sink, pickle.dumps(problem))
    except (BrokenPipeError, EOFError):
        pass  # the server is gone; what was committed stays committed
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
