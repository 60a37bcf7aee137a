"""packetdrill scripts for rawtcp: the language (``script``, ``parser``), the runner and exporter.

``parse_script(text, path)`` turns a script's text into a :class:`~.script.Script`;
:class:`~.script.ScriptError` ("FILE:LINE: what is wrong") for bad input.
"""

from rawtcp.packetdrill.parser import parse_file, parse_script
from rawtcp.packetdrill.script import Script, ScriptError

__all__ = ["Script", "ScriptError", "parse_file", "parse_script"]
