"""Small offload apps that tests run in real worker processes (importable by path)."""
