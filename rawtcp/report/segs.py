"""Moved: capture reading is rawtcp.report.captures, seg-event helpers rawtcp.report.enrich.
This name stays for rawtcp/commands.py (`from rawtcp.report.segs import is_capture`)."""

from rawtcp.report.captures import is_capture, read_capture, seg_events_from_pcap
from rawtcp.report.enrich import enrich

__all__ = ["enrich", "is_capture", "read_capture", "seg_events_from_pcap"]
