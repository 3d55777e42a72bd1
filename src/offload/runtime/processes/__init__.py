"""The process executor: each job runs in a child process, forked from a fork server.

Modules, in the order a job meets them:

- `executor`: `ProcessExecutor`, the worker's side: starts children, hands them jobs,
  reads their messages, enforces timeouts and cancels, replaces dead or worn-out children.
- `slot`: one child and the jobs it holds, with the byte budget of its pipe.
- `protocol`: the typed messages on a worker-child pipe and their one framing.
- `child`: the child's loop: receive jobs, run them in order, send their ends back.
- `limits`: a task's CPU and memory limits, applied in the child around one run.

Nothing is imported here: the fork server imports `child` (and so this package) before
forking every child, and needs none of the worker's side.
"""
