"""Loaded only by test_clean_stop.py's runportal (its PYTHONPATH names this
folder), in gunicorn's processes: the timing that left about one Ctrl-C in
ten waiting 30 s, made certain.

* A thread pool's shutdown holds the pool's shutdown lock for a second
  (a gthread worker's quit handler shuts its pool down);
* the master sends its workers SIGQUIT half a second after it decided to.

A worker that heard the Ctrl-C itself is then inside its quit handler, the
lock held, when the master's SIGQUIT arrives."""

import sys

if "gunicorn" in sys.orig_argv:
    import signal
    import time
    from concurrent.futures import thread

    from gunicorn.arbiter import Arbiter

    _shutdown = thread.ThreadPoolExecutor.shutdown
    _kill_workers = Arbiter.kill_workers

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._shutdown_lock:
            time.sleep(1)
        _shutdown(self, wait, cancel_futures=cancel_futures)

    def kill_workers(self, sig):
        if sig == signal.SIGQUIT:
            time.sleep(0.5)
        _kill_workers(self, sig)

    thread.ThreadPoolExecutor.shutdown = shutdown
    Arbiter.kill_workers = kill_workers
