"""Test hosts on one machine: network namespaces with their own addresses (`netns`), a
PostgreSQL on their bridge with worker and producer processes inside them (`cluster`), the
app they run and the ledger its tasks write every run into (`app`, `ledger`), and the bare
claim loop the benchmark compares against (`rawclaim`). Needs root."""
