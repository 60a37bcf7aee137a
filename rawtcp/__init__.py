"""rawtcp: a userspace TCP stack in Python that talks to real Linux kernels over raw packets.

>>> import rawtcp                                   # doctest: +SKIP
>>> with rawtcp.Stack(link) as st:                  # doctest: +SKIP
...     s = st.socket()
...     s.connect(("10.0.0.1", 7))
"""

from typing import Any

import rawtcp.socket as _socket_layer  # noqa: F401 - registers Stack.socket()'s Socket class
import rawtcp.udp_socket as _udp_layer  # noqa: F401 - and its SOCK_DGRAM DatagramSocket class

__version__ = "0.1.0"

__all__ = ["Stack", "Config", "State", "Socket", "patch", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: `import rawtcp` stays cheap
    if name == "Stack":
        from rawtcp.runtime import Stack

        return Stack
    if name == "Config":
        from rawtcp.core.config import Config

        return Config
    if name == "State":
        from rawtcp.core.states import State

        return State
    if name == "Socket":
        from rawtcp.socket import Socket

        return Socket
    if name == "patch":      # rawtcp.patch(stack): the socket module hands out rawtcp sockets
        from rawtcp.patch import patch

        globals()["patch"] = patch   # the import made the attribute the module: the function
        return patch
    raise AttributeError(f"module 'rawtcp' has no attribute {name!r}")
