"""Worker processes that read files in parallel, each file bounded in time and memory.

`concurrent.futures` cannot time out one task or survive a worker killed by the OS, so this is
a small pool of its own: each worker has a pipe, gets paths in small batches and sends back one
result per file. A worker that stays silent too long is killed and the file it was on is
recorded as an error; a worker that dies (OOM killer, segfault, kill -9) is replaced the same
way, and one that ran out of its address space (RLIMIT_AS) reports the file and starts afresh.
Results come back in completion order.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from .crawl import Candidate
from .errors import IbashError
from .outcome import ExtractOptions, FileResult
from .spool import Spools, SpoolWriter
from .tally import Profile, Tally

BATCH = 32
STARTUP_FAILURES = 3  # workers in a row that die before they are ready: give up, it is not the files
STARTUP_TIMEOUT = 120.0  # seconds a new worker may take to import and say it is ready
_EXITING = "exiting"
_READY = "ready"

Reader = Callable[[bytes, str, ExtractOptions], FileResult]


@dataclass(frozen=True)
class Limits:
    """Per-file limits: seconds of silence, and address space in MB (0 = none)."""

    timeout: float = 120.0
    memory_mb: int = 2048


def _worker(
    conn: Connection,
    options: ExtractOptions,
    memory_mb: int,
    reader: Reader | None,
    spools: Spools | None,
    slot: int,
    profile: Profile | None,
    started: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    spool = spools.writer(slot) if spools is not None else None
    try:
        conn.send(_READY)
        _serve(conn, options, memory_mb, reader, spool, profile, started)
    except (EOFError, OSError):
        return  # the parent is gone (killed, or stopped us): nothing to report to
    finally:
        if spool is not None:
            spool.close()


def _serve(
    conn: Connection,
    options: ExtractOptions,
    memory_mb: int,
    reader: Reader | None,
    spool: SpoolWriter | None,
    profile: Profile | None,
    started: Any,
) -> None:
    """Read each batch and send its results in one message, the batch's tally (tally.py) on the last.

    One message per batch, not per file: the parent's receiving was a third of its work. It
    learns which file a worker is on from `started` (files begun, in shared memory) instead.
    """
    from .extract import OUT_OF_MEMORY, read_file  # here: the parent process never needs pydicom

    reader = reader or read_file
    while True:
        batch = conn.recv()
        if batch is None:
            return
        tally = Tally(profile) if profile is not None and spool is not None else None
        results = []
        for path, root in batch:
            started.value += 1
            try:
                result = reader(path, root, options)
            except MemoryError:
                result = FileResult(path, root, "error", reason=OUT_OF_MEMORY)
            except Exception as exc:  # a bug, not the file: record it and go on
                result = FileResult(path, root, "error", reason=f"internal error: {type(exc).__name__}: {exc}")
            results.append(result)
            if result.status == "error" and (result.reason or "").startswith(OUT_OF_MEMORY):
                limit = f"the {memory_mb} MB a worker may use" if memory_mb else "the memory available"
                result.reason = f"{OUT_OF_MEMORY}: reading it needs more than {limit} (see --max-memory)"
                if spool is not None:
                    spool.take(results)
                conn.send(results)  # no tally: the writer counts these with SQL
                conn.send(_EXITING)  # the heap may be in a bad state: start afresh
                return
        if spool is not None:
            rows = [result.rows for result in results]
            spool.take(results)  # the whole batch in one spool transaction
            if tally is not None:
                for result, file_rows in zip(results, rows):
                    if result.spooled is not None:
                        tally.count(result, file_rows)
        if tally is not None:
            tally.last = results[-1].path_bytes
            results[-1].tally = tally
        conn.send(results)


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    slot: int
    inflight: deque[Candidate] = field(default_factory=deque)
    last: float = field(default_factory=time.monotonic)
    exiting: bool = False
    ready: bool = False  # it started: a death from now on is blamed on the file it was reading
    started: Any = None  # files it has begun, counted in shared memory by the worker
    done: int = 0  # files whose results came back
    seen: int = 0  # `started` when last looked at: a change means it is on a new file

    def current(self) -> int:
        """Position in `inflight` of the file it is reading (0 when it has not begun a batch)."""
        return max(0, min(self.started.value - self.done - 1, len(self.inflight) - 1))

    def moving(self, now: float) -> None:
        """Restart the silence clock when it began another file."""
        if self.started.value != self.seen:
            self.seen = self.started.value
            self.last = now


class Pool:
    """Read candidates on `workers` processes; iterate `run()` for the results."""

    def __init__(
        self,
        workers: int,
        options: ExtractOptions,
        limits: Limits,
        reader: Reader | None = None,
        spools: Spools | None = None,
        profile: Profile | None = None,
    ) -> None:
        self.size = max(1, workers)
        self.spools = spools  # where workers leave element rows; None: rows travel in the results
        self.profile = profile  # with spools: workers count summaries as they read (tally.py)
        self.options = options
        self.limits = limits
        self.reader = reader  # None: extract.read_file; tests swap in module-level functions (they are pickled)
        self.ctx = mp.get_context("spawn")
        self.workers: list[_Worker] = []
        self.startup_failures = 0

    def _spawn(self, slot: int) -> _Worker:
        parent, child = self.ctx.Pipe()
        started = self.ctx.RawValue("q", 0)
        args = (child, self.options, self.limits.memory_mb, self.reader, self.spools, slot, self.profile, started)
        process = self.ctx.Process(target=_worker, args=args, daemon=True)
        process.start()
        child.close()
        worker = _Worker(process, parent, slot, started=started)
        self.workers.append(worker)
        return worker

    def run(self, candidates: Iterable[Candidate]) -> Iterator[FileResult]:
        """Yield one result per candidate, whatever happens to the workers."""
        pending = deque(candidates)
        try:
            for i in range(min(self.size, len(pending))):
                self._spawn(self.spools.slot_for(i) if self.spools else 0)
            while self.workers:
                for worker in list(self.workers):
                    self._feed(worker, pending)
                busy = [w for w in self.workers if w.inflight or w.exiting]
                if not busy:
                    break
                ready = wait([w.conn for w in busy], timeout=1.0)
                now = time.monotonic()
                for worker in busy:
                    if worker.conn in ready:
                        yield from self._receive(worker, pending)
                        continue
                    worker.moving(now)
                    if not worker.ready:
                        if now - worker.last > STARTUP_TIMEOUT:
                            worker.process.kill()
                            self._startup_failed(worker, pending)
                    elif now - worker.last > self.limits.timeout and worker.inflight:
                        yield from self._fail(
                            worker,
                            pending,
                            f"timed out: reading took longer than {self.limits.timeout:g} s (see --timeout)",
                        )
        finally:
            self.close()

    def _feed(self, worker: _Worker, pending: deque[Candidate]) -> None:
        # Two batches in flight keep a worker busy while we read its results.
        while pending and len(worker.inflight) < 2 * BATCH and not worker.exiting:
            batch = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
            try:
                worker.conn.send([(c.path, c.root) for c in batch])
            except OSError:  # it died between batches: nothing of this batch was read
                pending.extendleft(reversed(batch))
                worker.exiting = True
                return
            if not worker.inflight:
                worker.last = time.monotonic()
            worker.inflight.extend(batch)

    def _receive(self, worker: _Worker, pending: deque[Candidate]) -> Iterator[FileResult]:
        while worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                if not worker.ready:
                    self._startup_failed(worker, pending)
                elif worker.exiting or not worker.inflight:
                    pending.extendleft(reversed(worker.inflight))
                    worker.inflight.clear()
                    self._replace(worker, pending)
                else:
                    code = worker.process.exitcode
                    worker.process.join(1)
                    code = worker.process.exitcode if code is None else code
                    yield from self._fail(worker, pending, _death_reason(code), kill=False)
                return
            worker.last = time.monotonic()
            if message == _READY:
                worker.ready = True
                self.startup_failures = 0
                continue
            if message == _EXITING:
                worker.exiting = True
                continue
            # A batch's results, together: the writer puts them (and the tally of the last) in one transaction.
            for r in message:
                worker.inflight.popleft()
                r.tally = message[-1].tally
            worker.done += len(message)
            yield from message

    def _fail(self, worker: _Worker, pending: deque[Candidate], reason: str, kill: bool = True) -> list[FileResult]:
        """Record the file the worker was on as an error, requeue the rest, replace the worker.

        Files of its batch read before the culprit are read again: their results were not sent yet.
        """
        if kill:
            worker.process.kill()
        else:
            worker.process.join(1)  # `started` is final once it is gone
        culprit = worker.inflight[worker.current()]
        worker.inflight.remove(culprit)
        pending.extendleft(reversed(worker.inflight))
        worker.inflight.clear()
        self._replace(worker, pending)
        return [FileResult(culprit.path, culprit.root, "error", culprit.size, culprit.mtime_ns, reason=reason)]

    def _startup_failed(self, worker: _Worker, pending: deque[Candidate]) -> None:
        """A worker died (or hung) before it was ready: not the files' fault, so they go back in the queue."""
        self.startup_failures += 1
        worker.process.join(1)
        code = worker.process.exitcode
        pending.extendleft(reversed(worker.inflight))
        worker.inflight.clear()
        if self.startup_failures >= STARTUP_FAILURES:
            self._stop(worker)
            self.workers.remove(worker)
            raise IbashError(
                f"worker processes cannot start (the last one ended with code {code}): check --max-memory, "
                "or read in this process with --workers 0"
            )
        self._replace(worker, pending)

    def _replace(self, worker: _Worker, pending: deque[Candidate]) -> None:
        self._stop(worker)
        self.workers.remove(worker)
        if pending:
            self._spawn(worker.slot)  # a killed worker's unfinished rows stay in its spool, never copied

    def _stop(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.conn.close()
        worker.process.join(0.5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(1)

    def close(self) -> None:
        """Stop every worker now; safe to call twice."""
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self.workers:
            if worker.inflight:
                worker.process.kill()
            self._stop(worker)
        self.workers.clear()


def _death_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker killed: the worker reading it was killed by {name}{hint}"
    return f"worker killed: the worker reading it exited unexpectedly (code {code})"


def read_serial(
    candidates: Iterable[Candidate], options: ExtractOptions, reader: Reader | None = None
) -> Iterator[FileResult]:
    """Read in this process: for --workers 0, debugging and profiling (no time or memory limit).

    Rows stay in the results: the writer inserts them itself.
    """
    from .extract import read_file

    for c in candidates:
        yield (reader or read_file)(c.path, c.root, options)
