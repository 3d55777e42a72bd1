"""offload beside the Python job queues people use today: one command, one table.

    .venv/bin/python -m benchmarks.peers [--quick] [--systems a,b,...] [--repeat 3]

See benchmarks/README.md ("offload and its peers"). Standard library only at this level:
the harness and the adapters' base are imported by offload's venv and by the peers' venv.
"""
