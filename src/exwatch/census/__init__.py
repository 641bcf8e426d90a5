"""A census split into tasks on Celery workers, all writing one PostgreSQL store.

    exwatch census submit TARGETS... --broker URL --db postgresql://...   (plan + enqueue)
    exwatch worker --broker URL --db postgresql://...                     (on N machines)
    exwatch census status | cancel | retry

plan.py     the census's settings as they travel to workers; splitting its permutation
broker.py   broker URLs, the Celery app's delivery settings, time limits from the deadline
submit.py   record the census and its tasks in the store, publish the tasks, retry
task.py     the Celery task: claim, scan, finish or fail (worker glue)
run.py      one task's range scanned with the scan engine, written through the census book
budget.py   the global rate budget shared by every worker through the store
status.py   status and cancel

The bookkeeping tables and their SQL are in store/census.py; the scanning is the scan
engine's (scan/runner.py `run_slice`), unchanged.  Celery is imported only by the commands
that talk to a broker.
"""
