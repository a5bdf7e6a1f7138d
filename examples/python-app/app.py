"""A small Python app whose native loads dltrace attributes to the lines that caused them.

./run.sh records it and shows the load tree (each extension module under the statement of
this script that loaded it), the native load time per top-level import, and the process tree
(the worker below runs in a forked process, which writes a trace of its own).
"""
import ctypes
import json
import multiprocessing

try:
    import numpy
except ImportError:  # python3-numpy is not installed: the rest still runs
    numpy = None


def total(prices):
    # _decimal is loaded on the first call, not at start-up.
    from decimal import Decimal
    return sum(Decimal(p) for p in prices).quantize(Decimal("0.01"))


def resolver():
    # A C library through ctypes: a dlopen that is not an import.
    return ctypes.CDLL("libresolv.so.2")


def count_rows(queue):
    # Only the worker imports sqlite3: _sqlite3 (and its libsqlite3) load in its process.
    import sqlite3
    queue.put(sqlite3.connect(":memory:").execute("select 6 * 7").fetchone()[0])


if __name__ == "__main__":
    prices = json.loads('["1.10", "2.20", "3.30"]')
    print("total", total(prices))
    print("resolver", resolver()._name)
    if numpy is not None:
        print("numpy", numpy.__version__, numpy.arange(4).sum())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=count_rows, args=(queue,))
    worker.start()
    print("worker", queue.get(timeout=60))
    worker.join()
