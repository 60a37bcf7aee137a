"""Sans-IO TCP core: pure protocol logic. No scapy, time, socket, select, threading or os.

Time is passed in as integer microseconds everywhere. See docs/contracts.md.
"""
