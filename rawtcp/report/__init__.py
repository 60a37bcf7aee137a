"""Reports drawn from traces and captures: terminal ladder diagrams and plots."""

from rawtcp.report.ladder import ladder_from_pcap, render_ladder

__all__ = ["render_ladder", "ladder_from_pcap"]
