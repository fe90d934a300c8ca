"""Every read and write of tokens, codes, clients and counters: the ORM path and the
fast path (Core statements built once) side by side."""
