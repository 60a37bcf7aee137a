"""Reports drawn from traces and captures: terminal ladder diagrams and plots."""

from rawtcp.report.ladder import ladder_from_pcap, render_ladder

__all__ = ["ladder_from_pcap", "render_ladder"]
