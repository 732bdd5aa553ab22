"""Decoding: the loop both backends share, sampling on the host, the REPL."""
