"""Core layer: the job model, task options, errors and serialization. No I/O here."""
