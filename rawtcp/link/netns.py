"""Moved to rawtcp.host.netns (host plumbing below links and labs); this name stays for
rawtcp/bench/run.py. New code imports rawtcp.host.netns."""

from rawtcp.host.netns import exec_prefix, in_netns, ip_cmd, netns_path

__all__ = ["exec_prefix", "in_netns", "ip_cmd", "netns_path"]
