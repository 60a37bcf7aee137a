import subprocess


def snapshot() -> dict[str, set[str]]:
    def lines(cmd: list[str]) -> set[str]:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return {ln.split()[0] if cmd[1] == "netns" else ln for ln in out.splitlines() if ln}
    return {
        "netns": lines(["ip", "netns", "list"]),
        "links": {ln.split(":")[1].strip().split("@")[0]
                  for ln in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                           text=True, check=True).stdout.splitlines()},
        "tables": lines(["nft", "list", "tables"]),
    }
