"""Host plumbing below links and labs: running `ip`/`nft` commands, network namespaces, the
registry of kernel objects rawtcp created, nftables tables, and the privilege check.

Both `rawtcp.link` and `rawtcp.lab` import from here; nothing here imports them.

- `system.run`      run a system command, OSError naming it and its stderr on failure
- `netns`           enter a namespace from one thread (`in_netns`), create/delete/list them
- `registry`        a record of every kernel object rawtcp made, for cleanup after a crash
- `nft`             nftables tables: load atomically, read counters, delete
- `privileges`      may this process do what rawtcp needs? one clear PermissionError if not
"""
